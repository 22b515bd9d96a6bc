//! `sgt label …`: labels, and the members of manual ones.

use clap::Subcommand;

use super::client::AdminClient;
use super::nodes::resolve_node;
use super::{environment_arg, label_arg, Connection};
use crate::admin_types::{LabelBody, MembersChange, NodeListParams};
use sgt_core::types::{EnvironmentName, LabelName, NodeId};

/// `sgt label …`
#[derive(Subcommand, Debug)]
pub enum LabelAction {
    /// List labels.
    List,
    /// Show a label and its members.
    Show {
        /// The label.
        #[arg(value_parser = label_arg)]
        name: LabelName,
    },
    /// Create or replace a label: manual, or dynamic with --query.
    Put {
        /// The label.
        #[arg(value_parser = label_arg)]
        name: LabelName,
        /// Only nodes of this environment may be members [default: every environment's].
        #[arg(long = "env", value_parser = environment_arg)]
        env: Option<EnvironmentName>,
        /// Make it dynamic: a node is a member while this query returns a row on it.
        #[arg(long)]
        query: Option<String>,
        /// For a dynamic label, ask only nodes of this platform (linux, darwin, windows,
        /// freebsd).
        #[arg(long, requires = "query")]
        platform: Option<String>,
        /// What it groups, for people.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a label (refused while a pack is for it).
    Delete {
        /// The label.
        #[arg(value_parser = label_arg)]
        name: LabelName,
    },
    /// Add hosts to a manual label.
    Add {
        /// The label.
        #[arg(value_parser = label_arg)]
        name: LabelName,
        /// The hosts, each a node id, host identifier, hostname, hardware uuid or serial.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// Remove hosts from a manual label.
    Remove {
        /// The label.
        #[arg(value_parser = label_arg)]
        name: LabelName,
        /// The hosts, each a node id, host identifier, hostname, hardware uuid or serial.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

const NODE_COLUMNS: [&str; 6] = [
    "id",
    "environment",
    "host_identifier",
    "platform",
    "last_seen",
    "online",
];

pub(super) async fn run(conn: &Connection, action: LabelAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        LabelAction::List => conn.show(
            &api.list_labels().await?,
            &["name", "environment", "platform", "query", "description"],
        ),
        LabelAction::Show { name } => {
            let label = api.label(name.as_str()).await?;
            let members = api
                .all_nodes(NodeListParams {
                    label: Some(name.to_string()),
                    ..NodeListParams::default()
                })
                .await?;
            if conn.json {
                conn.show(
                    &serde_json::json!({"label": label, "members": members}),
                    &[],
                );
            } else {
                conn.show(&label, &[]);
                println!("\n{} members:", members.len());
                conn.show(&members, &NODE_COLUMNS);
            }
        }
        LabelAction::Put {
            name,
            env,
            query,
            platform,
            description,
        } => {
            let body = LabelBody {
                environment: env,
                query,
                platform,
                description,
            };
            conn.show(&api.put_label(name.as_str(), &body).await?, &[]);
        }
        LabelAction::Delete { name } => {
            api.delete_label(name.as_str()).await?;
            eprintln!("label {name} deleted");
        }
        LabelAction::Add { name, hosts } => {
            let change = MembersChange {
                add: resolve_nodes(&api, &hosts).await?,
                ..MembersChange::default()
            };
            let changed = api.change_label_members(name.as_str(), &change).await?;
            eprintln!("{} added to label {name}", changed.added);
        }
        LabelAction::Remove { name, hosts } => {
            let change = MembersChange {
                remove: resolve_nodes(&api, &hosts).await?,
                ..MembersChange::default()
            };
            let changed = api.change_label_members(name.as_str(), &change).await?;
            eprintln!("{} removed from label {name}", changed.removed);
        }
    }
    Ok(())
}

/// The node id of each of `hosts` (see [`resolve_node`]).
async fn resolve_nodes(api: &AdminClient, hosts: &[String]) -> anyhow::Result<Vec<NodeId>> {
    let mut ids = Vec::with_capacity(hosts.len());
    for host in hosts {
        ids.push(resolve_node(api, host).await?);
    }
    Ok(ids)
}
