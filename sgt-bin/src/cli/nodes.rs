//! `sgt node …`: enrolled nodes.

use clap::Subcommand;

use super::Connection;
use crate::admin_types::NodeListParams;

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
        /// Only nodes seen within this long (e.g. 10m, 2h).
        #[arg(long)]
        seen_within: Option<humantime::Duration>,
    },
    /// Show a node with its host details.
    Show {
        /// Node id.
        id: String,
    },
    /// Delete a node (its agent re-enrolls).
    Delete {
        /// Node id.
        id: String,
    },
}

pub(super) async fn run(conn: &Connection, action: NodeAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        NodeAction::List {
            env,
            platform,
            search,
            seen_within,
        } => {
            let filter = NodeListParams {
                environment: env,
                platform,
                search,
                seen_since: seen_within
                    .map(|within| sgt_core::types::now_unix() - within.as_secs() as i64),
                ..NodeListParams::default()
            };
            let nodes = api.all_nodes(filter).await?;
            conn.show(
                &nodes,
                &[
                    "id",
                    "environment",
                    "host_identifier",
                    "platform",
                    "osquery_version",
                    "last_seen",
                ],
            );
        }
        NodeAction::Show { id } => {
            let mut node = api.node(&id).await?;
            if !conn.json {
                // The details are a long object of their own: `--json` prints them.
                node.host_details = None;
            }
            conn.show(&node, &[]);
        }
        NodeAction::Delete { id } => {
            api.delete_node(&id).await?;
            eprintln!("node {id} deleted; its agent will enroll again");
        }
    }
    Ok(())
}
