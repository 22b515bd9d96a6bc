//! `sgt node …`: enrolled nodes.

use anyhow::bail;
use clap::Subcommand;

use super::client::AdminClient;
use super::{output, Connection};
use crate::admin_types::NodeListParams;
use sgt_core::types::NodeId;

/// What a host argument may be, for help texts.
pub(super) const HOST_NAMES: &str =
    "a node id, host identifier, hostname, hardware uuid or hardware serial";

/// The id of the one node `name` names exactly (see [`HOST_NAMES`]).
///
/// # Errors
/// When no node or several have that name (listing them), or the server's refusal.
pub(super) async fn resolve_node(api: &AdminClient, name: &str) -> anyhow::Result<NodeId> {
    let matches = api
        .all_nodes(NodeListParams {
            host: Some(name.to_owned()),
            ..NodeListParams::default()
        })
        .await?;
    match matches.as_slice() {
        [] => bail!("no node is called {name:?} ({HOST_NAMES})"),
        [one] => Ok(one.id.clone()),
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|n| {
                    format!(
                        "  {}  {}  {}  {}  last seen {}",
                        n.id,
                        n.host_identifier,
                        n.hostname.as_deref().unwrap_or("-"),
                        n.environment,
                        output::field_cell("last_seen", &serde_json::json!(n.last_seen)),
                    )
                })
                .collect();
            bail!(
                "{name:?} names {} nodes; name one by its id:\n{}",
                several.len(),
                listed.join("\n")
            )
        }
    }
}

/// `sgt node …`
#[derive(Subcommand, Debug)]
pub enum NodeAction {
    /// List nodes.
    List {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only this platform (linux, darwin, windows, freebsd).
        #[arg(long)]
        platform: Option<String>,
        /// Only hosts whose identifier or hostname contains this.
        #[arg(long)]
        search: Option<String>,
        /// Only the nodes this names exactly: a node id, host identifier, hostname, hardware
        /// uuid or serial.
        #[arg(long)]
        host: Option<String>,
        /// Only members of this label.
        #[arg(long)]
        label: Option<String>,
        /// Only nodes seen within this long (e.g. 10m, 2h).
        #[arg(long)]
        seen_within: Option<humantime::Duration>,
        /// Only nodes online now.
        #[arg(long, conflicts_with = "offline")]
        online: bool,
        /// Only nodes offline now.
        #[arg(long)]
        offline: bool,
        /// Only nodes awaiting enrollment approval.
        #[arg(long)]
        pending: bool,
    },
    /// Approve a node awaiting enrollment approval: it gets its full config, live queries
    /// and carves, and its logs are taken.
    Approve {
        /// The node: a node id, host identifier, hostname, hardware uuid or serial.
        host: String,
    },
    /// Reject a node awaiting enrollment approval: it is deleted (revoke the enroll secret
    /// to keep its host out).
    Reject {
        /// The node: a node id, host identifier, hostname, hardware uuid or serial.
        host: String,
    },
    /// Show a node with its host details.
    Show {
        /// The node: a node id, host identifier, hostname, hardware uuid or serial.
        host: String,
    },
    /// Delete a node (its agent re-enrolls).
    Delete {
        /// The node: a node id, host identifier, hostname, hardware uuid or serial.
        host: String,
    },
}

pub(super) async fn run(conn: &Connection, action: NodeAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        NodeAction::List {
            env,
            platform,
            search,
            host,
            label,
            seen_within,
            online,
            offline,
            pending,
        } => {
            let filter = NodeListParams {
                environment: env,
                platform,
                search,
                host,
                label,
                pending: pending.then_some(true),
                seen_since: seen_within
                    .map(|within| sgt_core::types::now_unix() - within.as_secs() as i64),
                ..NodeListParams::default()
            };
            let mut nodes = api.all_nodes(filter).await?;
            if online || offline {
                nodes.retain(|n| n.online == online);
            }
            conn.show(
                &nodes,
                &[
                    "id",
                    "environment",
                    "host_identifier",
                    "platform",
                    "osquery_version",
                    "last_seen",
                    "online",
                    "pending",
                ],
            );
        }
        NodeAction::Approve { host } => {
            let id = resolve_node(&api, &host).await?;
            let node = api.approve_node(id.as_str()).await?;
            eprintln!("node {} ({}) approved", node.id, node.host_identifier);
        }
        NodeAction::Reject { host } => {
            let id = resolve_node(&api, &host).await?;
            api.reject_node(id.as_str()).await?;
            eprintln!("node {id} rejected and deleted");
        }
        NodeAction::Show { host } => {
            let id = resolve_node(&api, &host).await?;
            let mut node = api.node(id.as_str()).await?;
            if !conn.json {
                // The details are a long object of their own: `--json` prints them.
                node.host_details = None;
            }
            conn.show(&node, &[]);
        }
        NodeAction::Delete { host } => {
            let id = resolve_node(&api, &host).await?;
            api.delete_node(id.as_str()).await?;
            eprintln!("node {id} deleted; its agent will enroll again");
        }
    }
    Ok(())
}
