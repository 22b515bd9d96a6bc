//! `sgt query …`: run a live query and wait for answers; follow and read campaigns.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;

use super::{environment_arg, node_id_arg, output, Connection};
use crate::admin_types::NewCampaign;
use sgt_core::store::QueryTargets;
use sgt_core::types::{EnvironmentName, NodeId};

/// `sgt query …`
#[derive(Subcommand, Debug)]
pub enum QueryAction {
    /// Run a live query and wait for answers.
    Run {
        /// The SQL.
        sql: String,
        /// Target every node.
        #[arg(long)]
        all: bool,
        /// Target an environment (repeatable).
        #[arg(long = "env", value_parser = environment_arg)]
        envs: Vec<EnvironmentName>,
        /// Target a platform (repeatable).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Target a node by id (repeatable).
        #[arg(long = "node", value_parser = node_id_arg)]
        nodes: Vec<NodeId>,
        /// How long to wait for answers.
        #[arg(long, default_value = "30s")]
        wait: humantime::Duration,
    },
    /// List live queries.
    List,
    /// Show a live query's progress.
    Show {
        /// Query id.
        id: String,
    },
    /// Show each targeted node's state for a live query.
    Targets {
        /// Query id.
        id: String,
    },
    /// Print a live query's results.
    Results {
        /// Query id.
        id: String,
    },
    /// Stop delivering a live query.
    Cancel {
        /// Query id.
        id: String,
    },
}

pub(super) async fn run(conn: &Connection, action: QueryAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        QueryAction::Run {
            sql,
            all,
            envs,
            platforms,
            nodes,
            wait,
        } => {
            let campaign = NewCampaign {
                sql,
                targets: QueryTargets {
                    all,
                    environments: envs,
                    platforms,
                    node_ids: nodes,
                },
                expires_in_seconds: None,
            };
            let mut progress = api.create_query(&campaign).await?;
            let id = progress.query.id.to_string();
            let deadline = Instant::now() + Duration::from(wait);
            // The running count is for a person watching; a pipe or log gets the summary only.
            let show_progress = !conn.json && std::io::stderr().is_terminal();
            loop {
                let (answered, targeted) = (progress.answered(), progress.targeted);
                if show_progress {
                    eprint!("\ranswered {answered}/{targeted} hosts ");
                    let _ = std::io::stderr().flush();
                }
                if (targeted > 0 && answered >= targeted) || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                progress = api.query(&id).await?;
            }
            if show_progress {
                eprintln!();
            }
            let results = api.all_query_results(&id).await?;
            if conn.json {
                output::json(&json!({"query": progress, "results": results}));
            } else {
                output::results(&results);
                eprintln!(
                    "query {id}: {} of {} hosts answered",
                    results.len(),
                    progress.targeted
                );
            }
        }
        QueryAction::List => conn.show(
            &api.all_queries().await?,
            &["id", "created_by", "created_at", "cancelled_at", "sql"],
        ),
        QueryAction::Show { id } => conn.show(&api.query(&id).await?, &[]),
        QueryAction::Targets { id } => conn.show(
            &api.query_targets(&id).await?,
            &["node_id", "state", "updated_at", "message"],
        ),
        QueryAction::Results { id } => {
            let results = api.all_query_results(&id).await?;
            if conn.json {
                conn.show(&results, &[]);
            } else {
                output::results(&results);
            }
        }
        QueryAction::Cancel { id } => conn.show(&api.cancel_query(&id).await?, &[]),
    }
    Ok(())
}
