//! `sgt carve …`: ask nodes for files, follow the uploads, download the archives.

use std::path::PathBuf;

use clap::Subcommand;

use super::Connection;
use crate::admin_types::{CarveListParams, CarveRequest};

/// `sgt carve …`
#[derive(Subcommand, Debug)]
pub enum CarveAction {
    /// Ask a node for a file (or files: % makes a LIKE pattern).
    Request {
        /// The node: a node id, host identifier, hostname, hardware uuid or serial.
        host: String,
        /// Absolute path.
        path: String,
    },
    /// List carves.
    List {
        /// Only this node's.
        #[arg(long)]
        node: Option<String>,
    },
    /// Show a carve.
    Show {
        /// Carve id (as `sgt carve list` shows it).
        id: String,
    },
    /// Download a complete carve's archive.
    Download {
        /// Carve id (as `sgt carve list` shows it).
        id: String,
        /// Where to write it.
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub(super) async fn run(conn: &Connection, action: CarveAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        CarveAction::Request { host, path } => {
            let node_id = super::nodes::resolve_node(&api, &host).await?;
            let query = api.request_carve(&CarveRequest { node_id, path }).await?;
            if conn.json {
                conn.show(&query, &[]);
            } else {
                println!(
                    "carve requested as live query {}; the upload appears in `sgt carve list` when the agent starts it",
                    query.query.id
                );
            }
        }
        CarveAction::List { node } => {
            let filter = CarveListParams {
                node_id: node,
                ..CarveListParams::default()
            };
            conn.show(
                &api.all_carves(filter).await?,
                &[
                    "id",
                    "node_id",
                    "status",
                    "progress_percent",
                    "carve_size",
                    "sha256",
                ],
            );
        }
        CarveAction::Show { id } => conn.show(&api.carve(&id).await?, &[]),
        CarveAction::Download { id, output } => {
            let bytes = api.carve_archive(&id, &output).await?;
            eprintln!("wrote {bytes} bytes to {}", output.display());
        }
    }
    Ok(())
}
