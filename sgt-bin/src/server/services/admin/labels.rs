//! Labels: named groups of nodes that campaigns, packs and node lists aim at. Manual labels
//! have their members set here; dynamic ones by their nodes' answers to the label's query
//! (see the agent service).

use std::collections::BTreeSet;

use super::nodes::NodePages;
use super::queries::PLATFORMS;
use super::saved_queries::{checked_description, checked_sql};
use super::AdminService;
use crate::admin_types::{Caller, LabelBody, MembersChange, MembersChanged};
use crate::server::services::config_doc::labels_in_packs;
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::store::{Label, ListNodes, Role, MAX_LABELS, MAX_NODES_BY_IDS};
use sgt_core::types::{now_unix, LabelName};

fn label_name(name: &str) -> Result<LabelName> {
    LabelName::parse(name).map_err(|_| Error::not_found("label"))
}

impl AdminService {
    /// Every label, by name.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_labels(&self, caller: &Caller) -> Result<Vec<Label>> {
        caller.require(Role::Viewer)?;
        self.backends.store.list_labels().await
    }

    /// One label.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn label(&self, caller: &Caller, name: &str) -> Result<Label> {
        caller.require(Role::Viewer)?;
        self.backends.store.label(&label_name(name)?).await
    }

    /// Creates or replaces the label `name` (operators and admins). Its members stay, except
    /// those a narrower scope (environment, or a dynamic label's platform) no longer covers.
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for a bad name, SQL or description, a platform without a
    /// query or unknown, an unknown environment, or one label more than [`MAX_LABELS`].
    pub async fn put_label(&self, caller: &Caller, name: &str, body: LabelBody) -> Result<Label> {
        caller.require(Role::Operator)?;
        let name = LabelName::parse(name)?;
        let query = body.query.as_deref().map(checked_sql).transpose()?;
        if let Some(platform) = &body.platform {
            if query.is_none() {
                return Err(Error::invalid_input(
                    "platform is for dynamic labels only (give a query)",
                ));
            }
            if !PLATFORMS.contains(&platform.as_str()) {
                return Err(Error::invalid_input(format!(
                    "unknown platform {platform:?} (known: {})",
                    PLATFORMS.join(", ")
                )));
            }
        }
        if let Some(environment) = &body.environment {
            self.require_environment(environment).await?;
        }
        let existing = match self.backends.store.label(&name).await {
            Ok(existing) => Some(existing),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if existing.is_none() && self.backends.store.list_labels().await?.len() >= MAX_LABELS {
            return Err(Error::invalid_input(format!(
                "there are {MAX_LABELS} labels already; delete one first"
            )));
        }
        let now = now_unix();
        let label = self
            .backends
            .store
            .put_label(&Label {
                name,
                environment: body.environment,
                query,
                platform: body.platform,
                description: checked_description(&body.description)?,
                created_at: now,
                updated_at: now,
                updated_by: caller.username.to_string(),
            })
            .await?;
        self.forget_labels();
        self.audit(
            caller,
            "label.put",
            label.name.as_str(),
            serde_json::json!({
                "environment": label.environment,
                "query": label.query,
                "platform": label.platform,
                "description": label.description,
            }),
        )
        .await;
        if existing.is_some() {
            self.remove_uncovered_members(&label).await?;
        }
        Ok(label)
    }

    /// Takes out of `label` the members its scope no longer covers.
    async fn remove_uncovered_members(&self, label: &Label) -> Result<()> {
        let store = &*self.backends.store;
        let mut uncovered = Vec::new();
        let mut pages = NodePages::new(
            store,
            ListNodes {
                label: Some(label.name.clone()),
                ..ListNodes::default()
            },
        );
        while let Some(page) = pages.next().await? {
            uncovered.extend(
                page.into_iter()
                    .filter(|n| !label.covers(&n.environment, &n.platform))
                    .map(|n| n.id),
            );
        }
        for id in &uncovered {
            store.set_label_member(&label.name, id, false).await?;
            self.forget_node(id);
        }
        Ok(())
    }

    /// Deletes a label and its memberships (operators and admins).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `Conflict` while a pack of some environment is for it.
    pub async fn delete_label(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require(Role::Operator)?;
        let name = label_name(name)?;
        for environment in self.backends.store.list_environments().await? {
            if labels_in_packs(&environment.config).contains(&name) {
                return Err(Error::conflict(format!(
                    "packs of environment {} are for label {name}: change them first",
                    environment.name
                )));
            }
        }
        self.backends.store.delete_label(&name).await?;
        self.forget_labels();
        self.audit(
            caller,
            "label.delete",
            name.as_str(),
            serde_json::Value::Null,
        )
        .await;
        Ok(())
    }

    /// Adds nodes to and removes nodes from a manual label (operators and admins).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound` for the label; `InvalidInput` for a dynamic label, more than
    /// 1,000 nodes, an unknown node, or a node the label's environment does not cover.
    pub async fn change_label_members(
        &self,
        caller: &Caller,
        name: &str,
        change: MembersChange,
    ) -> Result<MembersChanged> {
        caller.require(Role::Operator)?;
        let label = self.backends.store.label(&label_name(name)?).await?;
        if label.is_dynamic() {
            return Err(Error::invalid_input(format!(
                "label {} is dynamic: its query decides its members",
                label.name
            )));
        }
        if change.add.len() + change.remove.len() > MAX_NODES_BY_IDS {
            return Err(Error::invalid_input(format!(
                "at most {MAX_NODES_BY_IDS} nodes per change"
            )));
        }
        let added: BTreeSet<_> = change.add.iter().collect();
        if let Some(both) = change.remove.iter().find(|id| added.contains(id)) {
            return Err(Error::invalid_input(format!(
                "node {both} is both added and removed"
            )));
        }
        let found = self.backends.store.nodes_by_ids(&change.add).await?;
        for id in &added {
            match found.iter().find(|n| &&n.id == id) {
                None => return Err(Error::invalid_input(format!("unknown node {id}"))),
                Some(node) if !label.covers(&node.environment, &node.platform) => {
                    return Err(Error::invalid_input(format!(
                        "node {id} is in environment {}; label {} is for {}",
                        node.environment,
                        label.name,
                        label
                            .environment
                            .as_ref()
                            .map_or("every environment", |e| e.as_str())
                    )))
                }
                Some(_) => {}
            }
        }
        let mut changed = MembersChanged::default();
        let mut added_ids = Vec::new();
        let mut removed_ids = Vec::new();
        let store = &self.backends.store;
        for (ids, member) in [(&change.add, true), (&change.remove, false)] {
            for id in ids {
                let result = store.set_label_member(&label.name, id, member).await;
                match result {
                    Ok(true) if member => {
                        changed.added += 1;
                        added_ids.push(id);
                    }
                    Ok(true) => {
                        changed.removed += 1;
                        removed_ids.push(id);
                    }
                    Ok(false) => {}
                    // A node deleted meanwhile is no member either way.
                    Err(e) if e.kind() == ErrorKind::NotFound && !member => {}
                    Err(e) => return Err(e),
                }
                self.forget_node(id);
            }
        }
        self.audit(
            caller,
            "label.members",
            label.name.as_str(),
            serde_json::json!({"added": added_ids, "removed": removed_ids}),
        )
        .await;
        Ok(changed)
    }

    /// `InvalidInput` unless every label the packs of `config` are for exists.
    pub(super) async fn check_pack_labels(&self, config: &serde_json::Value) -> Result<()> {
        let wanted = labels_in_packs(config);
        if wanted.is_empty() {
            return Ok(());
        }
        let known: BTreeSet<LabelName> = self
            .backends
            .store
            .list_labels()
            .await?
            .into_iter()
            .map(|l| l.name)
            .collect();
        match wanted.iter().find(|l| !known.contains(l)) {
            Some(unknown) => Err(Error::invalid_input(format!(
                "a pack is for label {unknown}, which does not exist"
            ))),
            None => Ok(()),
        }
    }
}
