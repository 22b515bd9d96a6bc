//! `sgt pack …`: query packs, the `packs` member of an environment's config, one at a time.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{output, read_document, Connection};

/// `sgt pack …`
#[derive(Subcommand, Debug)]
pub enum PackAction {
    /// List an environment's packs with their query counts.
    List {
        /// Environment.
        env: String,
    },
    /// Print a pack.
    Show {
        /// Environment.
        env: String,
        /// Pack name.
        name: String,
    },
    /// Add or replace a pack from a JSON or YAML file (other packs are left as they are).
    Set {
        /// Environment.
        env: String,
        /// Pack name.
        name: String,
        /// The file: an osquery pack (`{"queries": {...}, ...}`).
        file: PathBuf,
    },
    /// Remove a pack.
    Delete {
        /// Environment.
        env: String,
        /// Pack name.
        name: String,
    },
}

pub(super) async fn run(conn: &Connection, action: PackAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        PackAction::List { env } => {
            let packs = api.packs(&env).await?;
            if conn.json {
                output::json(&Value::Object(packs));
            } else {
                let rows: Vec<Value> = packs
                    .iter()
                    .map(|(name, pack)| {
                        let queries = pack["queries"].as_object().map_or(0, |q| q.len());
                        json!({"name": name, "queries": queries, "platform": pack["platform"]})
                    })
                    .collect();
                output::table(&rows, &["name", "queries", "platform"]);
            }
        }
        PackAction::Show { env, name } => output::json(&api.pack(&env, &name).await?),
        PackAction::Set { env, name, file } => {
            let pack = read_document(&file)?;
            api.put_pack(&env, &name, &pack).await?;
            eprintln!("pack {name} of {env} written; agents get it at their next config poll");
        }
        PackAction::Delete { env, name } => {
            api.delete_pack(&env, &name).await?;
            eprintln!("pack {name} removed from {env}");
        }
    }
    Ok(())
}
