//! `sgt apply -f FILE`: config as code. For every environment in the file: create it if
//! missing, then make its config (with the file's packs merged in as `packs`) match the file.
//! For every label and saved query in the file: create it or make it match (a label's
//! definition, not its members). What the file does not name is left alone, unless
//! `--prune`: then, in each section the file has (`environments`, `labels`,
//! `saved_queries`), what the section does not name is deleted.
//!
//! New environments are created empty, then the labels are written, then the configs: packs
//! may be for labels of environments the same file creates.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use super::client::{AdminClient, ApiError};
use crate::admin_types::{LabelBody, NewEnvironment, SavedQueryBody};
use sgt_core::store::{EnvironmentSettings, Label};
use sgt_core::types::{LabelName, SavedQueryName};

/// The sections a file may have.
const SECTIONS: [&str; 3] = ["environments", "labels", "saved_queries"];

/// The desired config of one environment as the file describes it.
fn desired_config(name: &str, spec: &Value) -> anyhow::Result<Value> {
    let spec = spec
        .as_object()
        .with_context(|| format!("environments.{name} must be a mapping"))?;
    for key in spec.keys() {
        if !["config", "packs", "settings"].contains(&key.as_str()) {
            bail!("environments.{name}.{key}: unknown key (known: config, packs, settings)");
        }
    }
    let mut config = match spec.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(config)) => config.clone(),
        Some(_) => bail!("environments.{name}.config must be a mapping"),
    };
    match spec.get("packs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(packs)) => {
            if config.contains_key("packs") {
                bail!("environments.{name}: give packs either under config or beside it, not both");
            }
            config.insert("packs".into(), Value::Object(packs.clone()));
        }
        Some(_) => bail!("environments.{name}.packs must be a mapping"),
    }
    Ok(Value::Object(config))
}

/// The settings of environment `name` as the file gives them; `None` when it gives none.
fn desired_settings(name: &str, spec: &Value) -> anyhow::Result<Option<EnvironmentSettings>> {
    match spec.get("settings") {
        None | Some(Value::Null) => Ok(None),
        Some(settings) => serde_json::from_value(settings.clone())
            .map(Some)
            .with_context(|| format!("environments.{name}.settings")),
    }
}

/// The saved query `name` as the file describes it.
fn desired_saved_query(name: &str, spec: &Value) -> anyhow::Result<SavedQueryBody> {
    SavedQueryName::parse(name).with_context(|| format!("saved_queries.{name}"))?;
    let spec = spec
        .as_object()
        .with_context(|| format!("saved_queries.{name} must be a mapping"))?;
    for key in spec.keys() {
        if key != "sql" && key != "description" {
            bail!("saved_queries.{name}.{key}: unknown key (known: sql, description)");
        }
    }
    let text = |key: &str| match spec.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.trim().to_owned()),
        Some(_) => bail!("saved_queries.{name}.{key} must be a string"),
    };
    let sql = text("sql")?;
    if sql.is_empty() {
        bail!("saved_queries.{name}.sql is missing");
    }
    Ok(SavedQueryBody {
        sql,
        description: text("description")?,
    })
}

/// The label `name` as the file describes it.
fn desired_label(name: &str, spec: &Value) -> anyhow::Result<LabelBody> {
    LabelName::parse(name).with_context(|| format!("labels.{name}"))?;
    let spec = match spec {
        Value::Null => Value::Object(Map::new()),
        spec => spec.clone(),
    };
    let mut body: LabelBody =
        serde_json::from_value(spec).with_context(|| format!("labels.{name}"))?;
    body.query = body.query.map(|q| q.trim().to_owned());
    body.description = body.description.trim().to_owned();
    Ok(body)
}

/// Whether `current` is what `desired` describes.
fn label_matches(current: &Label, desired: &LabelBody) -> bool {
    current.environment == desired.environment
        && current.query == desired.query
        && current.platform == desired.platform
        && current.description == desired.description
}

/// What differs from `current` to `desired`, for a person: top-level keys added, removed or
/// changed, and packs by name.
fn changes(current: &Value, desired: &Value) -> Vec<String> {
    let (current, current_packs) = split_packs(current);
    let (desired, desired_packs) = split_packs(desired);
    let mut found = differences(&current, &desired, "");
    found.extend(differences(&current_packs, &desired_packs, "pack "));
    found
}

/// A config's members other than `packs`, and its packs.
fn split_packs(config: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut members = config.as_object().cloned().unwrap_or_default();
    let packs = match members.remove("packs") {
        Some(Value::Object(packs)) => packs,
        _ => Map::new(),
    };
    (members, packs)
}

/// `<label><name> added|removed|changed` for each member that differs, in name order.
fn differences(
    current: &Map<String, Value>,
    desired: &Map<String, Value>,
    label: &str,
) -> Vec<String> {
    let names: BTreeSet<&String> = current.keys().chain(desired.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (current.get(name), desired.get(name)) {
            (None, Some(_)) => Some(format!("{label}{name} added")),
            (Some(_), None) => Some(format!("{label}{name} removed")),
            (Some(a), Some(b)) if a != b => Some(format!("{label}{name} changed")),
            _ => None,
        })
        .collect()
}

/// Applies `document`; prints one line per environment and saved query saying what changed.
///
/// # Errors
/// A malformed document (nothing is changed then), or the server's refusal.
pub(super) async fn apply(
    api: &AdminClient,
    document: &Value,
    dry_run: bool,
    prune: bool,
) -> anyhow::Result<()> {
    let document = document
        .as_object()
        .context("the file must be a mapping of environments, labels and saved_queries")?;
    if let Some(key) = document.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        bail!("{key}: unknown key (known: {})", SECTIONS.join(", "));
    }
    let section = |key: &str| match document.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(section)) => Ok(section.clone()),
        Some(_) => bail!("{key} must be a mapping"),
    };
    let environments = section("environments")?;
    let labels = section("labels")?;
    let saved_queries = section("saved_queries")?;
    if environments.is_empty() && labels.is_empty() && saved_queries.is_empty() && !prune {
        bail!("the file names no environments, labels or saved_queries");
    }
    let would = if dry_run { "would be " } else { "" };
    // Check the whole file before changing anything.
    let mut plan = Vec::new();
    for (name, spec) in &environments {
        plan.push((
            name.clone(),
            desired_config(name, spec)?,
            desired_settings(name, spec)?,
        ));
    }
    let mut label_plan = Vec::new();
    for (name, spec) in &labels {
        label_plan.push((name.clone(), desired_label(name, spec)?));
    }
    let mut saved_plan = Vec::new();
    for (name, spec) in &saved_queries {
        saved_plan.push((name.clone(), desired_saved_query(name, spec)?));
    }
    let current_settings: BTreeMap<String, EnvironmentSettings> = api
        .list_environments()
        .await?
        .into_iter()
        .map(|e| (e.name.to_string(), e.settings))
        .collect();
    let existing: Vec<String> = current_settings.keys().cloned().collect();
    // New environments first, empty: labels may be for them, and their packs for labels.
    for (name, _, settings) in plan.iter().filter(|(n, _, _)| !existing.contains(n)) {
        if !dry_run {
            api.create_environment(&NewEnvironment {
                name: name.clone(),
                config: Some(Value::Object(Map::new())),
            })
            .await?;
            if let Some(settings) = settings
                .as_ref()
                .filter(|s| **s != EnvironmentSettings::default())
            {
                api.put_environment_settings(name, settings).await?;
            }
        }
        println!("{name}: {would}created");
    }
    apply_labels(api, label_plan, dry_run).await?;
    for (name, config, settings) in plan {
        if !existing.contains(&name) {
            if !dry_run {
                api.put_config(&name, &config, None).await?;
            }
            continue;
        }
        let settings_change = settings.filter(|s| Some(s) != current_settings.get(&name));
        if let Some(settings) = &settings_change {
            if !dry_run {
                api.put_environment_settings(&name, settings).await?;
            }
            println!("{name}: settings {would}updated");
        }
        let mut attempt = 0;
        let current = loop {
            attempt += 1;
            let current = api.config(&name).await?;
            if current.config == config || dry_run {
                break current.config;
            }
            // Written only over the config just read, so the changes printed are the ones
            // made; when someone else wrote in between, read again.
            match api.put_config(&name, &config, Some(current.version)).await {
                Ok(_) => break current.config,
                Err(e) if is_conflict(&e) && attempt < APPLY_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        };
        if current == config {
            if settings_change.is_none() {
                println!("{name}: unchanged");
            }
            continue;
        }
        println!(
            "{name}: config {would}updated ({})",
            changes(&current, &config).join(", ")
        );
    }
    if prune && document.contains_key("environments") {
        for name in existing.iter().filter(|e| !environments.contains_key(*e)) {
            if !dry_run {
                api.delete_environment(name).await?;
            }
            println!("{name}: {would}deleted");
        }
    }
    if prune && document.contains_key("labels") {
        for label in api.list_labels().await? {
            let name = label.name.as_str();
            if labels.contains_key(name) {
                continue;
            }
            if !dry_run {
                api.delete_label(name).await?;
            }
            println!("label {name}: {would}deleted");
        }
    }
    apply_saved_queries(api, saved_plan, dry_run).await?;
    if prune && document.contains_key("saved_queries") {
        for saved in api.list_saved_queries().await? {
            let name = saved.name.as_str();
            if saved_queries.contains_key(name) {
                continue;
            }
            if !dry_run {
                api.delete_saved_query(name).await?;
            }
            println!("saved query {name}: {would}deleted");
        }
    }
    Ok(())
}

/// Creates or updates each label of `plan`; prints one line for each.
async fn apply_labels(
    api: &AdminClient,
    plan: Vec<(String, LabelBody)>,
    dry_run: bool,
) -> anyhow::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let existing = api.list_labels().await?;
    let would = if dry_run { "would be " } else { "" };
    for (name, desired) in plan {
        let outcome = match existing.iter().find(|l| l.name.as_str() == name) {
            None => "created",
            Some(current) if label_matches(current, &desired) => {
                println!("label {name}: unchanged");
                continue;
            }
            Some(_) => "updated",
        };
        if !dry_run {
            api.put_label(&name, &desired).await?;
        }
        println!("label {name}: {would}{outcome}");
    }
    Ok(())
}

/// Creates or updates each saved query of `plan`; prints one line for each.
async fn apply_saved_queries(
    api: &AdminClient,
    plan: Vec<(String, SavedQueryBody)>,
    dry_run: bool,
) -> anyhow::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let existing = api.list_saved_queries().await?;
    let would = if dry_run { "would be " } else { "" };
    for (name, desired) in plan {
        let current = existing.iter().find(|q| q.name.as_str() == name);
        let outcome = match current {
            None => "created",
            Some(q) if q.sql == desired.sql && q.description == desired.description => {
                println!("saved query {name}: unchanged");
                continue;
            }
            Some(_) => "updated",
        };
        if !dry_run {
            api.put_saved_query(&name, &desired).await?;
        }
        println!("saved query {name}: {would}{outcome}");
    }
    Ok(())
}

/// How many times `sgt apply` reads and writes one environment's config when others keep
/// changing it in between.
const APPLY_ATTEMPTS: u32 = 5;

/// The server refused a write because the config changed since it was read.
fn is_conflict(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ApiError>()
        .is_some_and(|e| e.status == reqwest::StatusCode::CONFLICT)
}

#[cfg(test)]
mod tests {
    use super::{changes, desired_config};
    use serde_json::json;

    #[test]
    fn changes_name_keys_and_packs() {
        let current = json!({"options": {"a": 1}, "schedule": {"q": {}}, "packs": {"old": {}, "kept": {"x": 1}}});
        let desired = json!({"schedule": {"q": {"interval": 60}}, "decorators": {}, "packs": {"kept": {"x": 2}, "new": {}}});
        assert_eq!(
            changes(&current, &desired),
            [
                "decorators added",
                "options removed",
                "schedule changed",
                "pack kept changed",
                "pack new added",
                "pack old removed"
            ]
        );
        assert!(changes(&desired, &desired).is_empty());
    }

    #[test]
    fn packs_merge_into_the_config_and_mistakes_are_named() {
        let config = desired_config(
            "prod",
            &json!({"config": {"options": {"a": 1}}, "packs": {"p": {"queries": {}}}}),
        )
        .unwrap();
        assert_eq!(
            config,
            json!({"options": {"a": 1}, "packs": {"p": {"queries": {}}}})
        );
        assert!(desired_config("prod", &json!({"confg": {}}))
            .unwrap_err()
            .to_string()
            .contains("unknown key"));
        assert!(desired_config("prod", &json!({"config": {"packs": {}}, "packs": {}})).is_err());
        assert!(desired_config("prod", &json!([])).is_err());
    }
}
