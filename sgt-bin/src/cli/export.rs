//! `sgt export`: the server's environments (config, packs, settings), labels (their
//! definitions) and saved queries, in the
//! format `sgt apply -f` reads, so that `sgt export | sgt apply -f - --dry-run` changes
//! nothing.

use serde_json::{Map, Value};

use super::client::AdminClient;
use crate::admin_types::LabelBody;
use sgt_core::store::EnvironmentSettings;

/// The document `sgt apply` would need to make a server like this one.
///
/// # Errors
/// The server's refusal or the transport's.
pub(super) async fn document(api: &AdminClient) -> anyhow::Result<Value> {
    let mut environments = Map::new();
    for environment in api.list_environments().await? {
        let name = environment.name.to_string();
        let mut config = api.config(&name).await?.config;
        let mut spec = Map::new();
        // Packs beside the config, as `apply` files usually hold them.
        if let Some(packs) = config.as_object_mut().and_then(|c| c.remove("packs")) {
            spec.insert("packs".into(), packs);
        }
        spec.insert("config".into(), config);
        if environment.settings != EnvironmentSettings::default() {
            spec.insert(
                "settings".into(),
                serde_json::to_value(&environment.settings)?,
            );
        }
        environments.insert(name, Value::Object(spec));
    }
    let mut labels = Map::new();
    for label in api.list_labels().await? {
        let body = LabelBody {
            environment: label.environment,
            query: label.query,
            platform: label.platform,
            description: label.description,
        };
        labels.insert(label.name.to_string(), serde_json::to_value(&body)?);
    }
    let mut saved_queries = Map::new();
    for saved in api.list_saved_queries().await? {
        let mut spec = Map::new();
        spec.insert("sql".into(), Value::String(saved.sql));
        if !saved.description.is_empty() {
            spec.insert("description".into(), Value::String(saved.description));
        }
        saved_queries.insert(saved.name.to_string(), Value::Object(spec));
    }
    let mut document = Map::new();
    document.insert("environments".into(), Value::Object(environments));
    document.insert("labels".into(), Value::Object(labels));
    document.insert("saved_queries".into(), Value::Object(saved_queries));
    Ok(Value::Object(document))
}

/// `document` as YAML, or pretty JSON when `json`.
///
/// # Errors
/// Never in practice: every JSON value has a YAML form.
pub(super) fn render(document: &Value, json: bool) -> anyhow::Result<String> {
    if json {
        Ok(serde_json::to_string_pretty(document)? + "\n")
    } else {
        Ok(serde_yaml_ng::to_string(document)?)
    }
}
