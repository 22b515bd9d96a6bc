//! `sgt query …`: run a live query and wait for answers; follow and read campaigns; keep
//! saved queries.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;

use super::client::AdminClient;
use super::nodes::resolve_node;
use super::{environment_arg, label_arg, output, Connection};
use crate::admin_types::{NewCampaign, QueryView, ResultView, SavedQueryBody};
use sgt_core::store::QueryTargets;
use sgt_core::types::{EnvironmentName, LabelName, NodeId, SavedQueryName};

/// `sgt query …`
#[derive(Subcommand, Debug)]
pub enum QueryAction {
    /// Run a live query; print each host's rows as they arrive (`--json`: one JSON object
    /// per host and line, then one with the campaign's counts).
    Run {
        /// The SQL.
        #[arg(required_unless_present = "saved")]
        sql: Option<String>,
        /// Run this saved query's SQL instead.
        #[arg(long, conflicts_with = "sql")]
        saved: Option<String>,
        /// Target every node.
        #[arg(long)]
        all: bool,
        /// Target an environment (repeatable).
        #[arg(long = "env", value_parser = environment_arg)]
        envs: Vec<EnvironmentName>,
        /// Target a platform (repeatable).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Target a label's members (repeatable).
        #[arg(long = "label", value_parser = label_arg)]
        labels: Vec<LabelName>,
        /// Target a node: its id, host identifier, hostname, hardware uuid or serial
        /// (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// How long to wait for answers at most.
        #[arg(long, default_value = "30s")]
        wait: humantime::Duration,
        /// Stop as soon as every online target answered, instead of every target.
        #[arg(long)]
        exit: bool,
    },
    /// List live queries, or with --saved the saved ones.
    List {
        /// List saved queries instead.
        #[arg(long)]
        saved: bool,
    },
    /// Show a live query's progress, or with --saved a saved query.
    Show {
        /// Query id, or with --saved the saved query's name.
        id: String,
        /// Show a saved query.
        #[arg(long)]
        saved: bool,
    },
    /// Save a query by name (replacing one of that name).
    Save {
        /// Its name: letters, digits, `_`, `-`, `.`.
        name: String,
        /// The SQL.
        sql: String,
        /// What it answers.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a saved query.
    Delete {
        /// Its name.
        name: String,
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
            saved,
            all,
            envs,
            platforms,
            labels,
            nodes,
            wait,
            exit,
        } => {
            let campaign = NewCampaign {
                sql: sql.unwrap_or_default(),
                saved_query: saved.map(SavedQueryName::parse).transpose()?,
                targets: QueryTargets {
                    all,
                    environments: envs,
                    platforms,
                    labels,
                    node_ids: resolve_nodes(&api, &nodes).await?,
                },
                expires_in_seconds: None,
            };
            let progress = api.create_query(&campaign).await?;
            follow(conn, &api, progress, Duration::from(wait), exit).await?;
        }
        QueryAction::List { saved: false } => conn.show(
            &api.all_queries().await?,
            &["id", "created_by", "created_at", "cancelled_at", "sql"],
        ),
        QueryAction::List { saved: true } => conn.show(
            &api.list_saved_queries().await?,
            &["name", "description", "updated_by", "updated_at", "sql"],
        ),
        QueryAction::Show { id, saved: false } => conn.show(&api.query(&id).await?, &[]),
        QueryAction::Show { id, saved: true } => conn.show(&api.saved_query(&id).await?, &[]),
        QueryAction::Save {
            name,
            sql,
            description,
        } => conn.show(
            &api.put_saved_query(&name, &SavedQueryBody { sql, description })
                .await?,
            &[],
        ),
        QueryAction::Delete { name } => {
            api.delete_saved_query(&name).await?;
            eprintln!("saved query {name} deleted");
        }
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

/// Follows a new campaign until every target answered (every online one with `exit`) or
/// `wait` passed, printing each host's answer once, as it arrives.
async fn follow(
    conn: &Connection,
    api: &AdminClient,
    mut progress: QueryView,
    wait: Duration,
    exit: bool,
) -> anyhow::Result<()> {
    let id = progress.query.id.to_string();
    let deadline = Instant::now() + wait;
    // The running count is for a person watching; a pipe or log gets the answers only.
    let show_progress = !conn.json && std::io::stderr().is_terminal();
    let mut shown: HashSet<NodeId> = HashSet::new();
    loop {
        let (answered, online, targeted) =
            (progress.answered(), progress.online, progress.targeted);
        if answered > shown.len() {
            let arrived: Vec<ResultView> = api
                .all_query_results(&id)
                .await?
                .into_iter()
                .filter(|r| shown.insert(r.node_id.clone()))
                .collect();
            if show_progress {
                eprint!("\r\x1b[K");
            }
            if conn.json {
                let mut out = std::io::stdout().lock();
                for result in &arrived {
                    writeln!(out, "{}", serde_json::to_string(result)?)?;
                }
                out.flush()?;
            } else if !arrived.is_empty() {
                output::results(&arrived);
            }
        }
        if show_progress {
            eprint!("\ranswered {answered} of {online} online, {targeted} targeted ");
            let _ = std::io::stderr().flush();
        }
        let expected = if exit { online } else { targeted };
        if (targeted > 0 && answered >= expected) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        progress = api.query(&id).await?;
    }
    if show_progress {
        eprintln!();
    }
    if conn.json {
        println!("{}", serde_json::to_string(&json!({"query": progress}))?);
    } else {
        eprintln!(
            "query {id}: {} of {} hosts answered ({} online)",
            progress.answered(),
            progress.targeted,
            progress.online
        );
    }
    Ok(())
}

/// The ids of the nodes `hosts` name, each exactly one.
async fn resolve_nodes(api: &AdminClient, hosts: &[String]) -> anyhow::Result<Vec<NodeId>> {
    let mut ids = Vec::with_capacity(hosts.len());
    for host in hosts {
        ids.push(resolve_node(api, host).await?);
    }
    Ok(ids)
}
