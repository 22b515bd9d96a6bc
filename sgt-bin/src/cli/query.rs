//! `sgt query …`: run a live query and wait for answers; follow and read campaigns.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{output, seg, show, Connection, QueryAction};

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
            let targets = json!({"all": all, "environments": envs, "platforms": platforms, "node_ids": nodes});
            let created = api
                .call(
                    Method::POST,
                    "/api/v1/queries",
                    Some(&json!({"sql": sql, "targets": targets})),
                )
                .await?;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            let deadline = Instant::now() + Duration::from(wait);
            // The running count is for a person watching; a pipe or log gets the summary only.
            let show_progress = !conn.json && std::io::stderr().is_terminal();
            let mut progress = created;
            loop {
                let answered = count(&progress, "succeeded") + count(&progress, "failed");
                let targeted = count(&progress, "targeted");
                if show_progress {
                    eprint!("\ranswered {answered}/{targeted} hosts ");
                    let _ = std::io::stderr().flush();
                }
                if (targeted > 0 && answered >= targeted) || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                progress = api.get(&format!("/api/v1/queries/{id}")).await?;
            }
            if show_progress {
                eprintln!();
            }
            let results = api
                .get_all(&format!("/api/v1/queries/{id}/results"))
                .await?;
            if conn.json {
                output::json(&json!({"query": progress, "results": results}));
            } else {
                output::results(&results);
                eprintln!(
                    "query {id}: {} of {} hosts answered",
                    results.len(),
                    count(&progress, "targeted")
                );
            }
        }
        QueryAction::List => {
            let queries = Value::Array(api.get_all("/api/v1/queries").await?);
            show(
                conn,
                &queries,
                &["id", "created_by", "created_at", "cancelled_at", "sql"],
            );
        }
        QueryAction::Show { id } => {
            let query = api.get(&format!("/api/v1/queries/{}", seg(&id))).await?;
            show(conn, &query, &[]);
        }
        QueryAction::Results { id } => {
            let results = api
                .get_all(&format!("/api/v1/queries/{}/results", seg(&id)))
                .await?;
            if conn.json {
                output::json(&Value::Array(results));
            } else {
                output::results(&results);
            }
        }
        QueryAction::Cancel { id } => {
            let query = api
                .call(
                    Method::POST,
                    &format!("/api/v1/queries/{}/cancel", seg(&id)),
                    None,
                )
                .await?;
            show(conn, &query, &[]);
        }
    }
    Ok(())
}

fn count(progress: &Value, field: &str) -> u64 {
    progress[field].as_u64().unwrap_or(0)
}
