//! Live queries during a run (`--live-query-every`): campaigns created through the admin API
//! for every node, answered by the simulated agents with `--live-query-rows` rows each,
//! followed to 50, 95 and 100 % of answers, and read back through the admin API at the end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::admin_types::NewCampaign;
use crate::cli::client::AdminClient;
use sgt_core::store::QueryTargets;

/// The campaigns this run created, and when each agent's answer to them was acknowledged.
#[derive(Debug)]
pub(crate) struct Campaigns {
    /// Rows each agent answers a campaign of this run with.
    rows: usize,
    /// What ends the SQL of this run's campaigns: agents know them by it, even when they read
    /// one before its creator has its id back.
    marker: String,
    tracked: Mutex<HashMap<String, Tracked>>,
}

/// One campaign, as its creator and its answers fill it in, in either order.
#[derive(Debug, Default)]
struct Tracked {
    /// When the creator asked for it, and how many nodes it targeted then.
    created: Option<(Instant, usize)>,
    /// When each answer was acknowledged.
    answers: Vec<Instant>,
    /// Bytes of the rows answered.
    bytes: u64,
}

/// One campaign in the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CampaignSummary {
    pub(crate) id: String,
    /// Seconds into the run it was created.
    pub(crate) created_at_second: f64,
    /// Nodes it targeted when created.
    pub(crate) targeted: usize,
    /// Answers the agents sent and the server acknowledged.
    pub(crate) answered: usize,
    /// What the admin API counted as answered with status 0 at the end.
    pub(crate) succeeded: usize,
    /// Seconds from creation until 50, 95 and 100 % of the targeted nodes had answered
    /// (absent when never reached).
    pub(crate) seconds_to_50: Option<f64>,
    pub(crate) seconds_to_95: Option<f64>,
    pub(crate) seconds_to_100: Option<f64>,
    /// Bytes of result rows the agents sent for it.
    pub(crate) result_bytes: u64,
    /// Result rows read back through the admin API after the run.
    pub(crate) rows_read_back: usize,
    /// Rows expected back: answers times rows per answer.
    pub(crate) rows_expected: usize,
}

impl Campaigns {
    /// Campaigns of run `run_id`, answered with `rows` rows by each agent.
    pub(crate) fn new(rows: usize, run_id: &str) -> Campaigns {
        Campaigns {
            rows,
            marker: format!("-- sgt loadtest {run_id}"),
            tracked: Mutex::new(HashMap::new()),
        }
    }

    /// How many rows to answer a live query of `sql` with, when this run created it.
    pub(crate) fn rows_for(&self, sql: &str) -> Option<usize> {
        sql.ends_with(&self.marker).then_some(self.rows)
    }

    /// Records an acknowledged answer to campaign `id` carrying `bytes` of rows.
    pub(crate) fn answered(&self, id: &str, bytes: u64) {
        let mut tracked = self.tracked.lock().expect("campaigns lock");
        let campaign = tracked.entry(id.to_owned()).or_default();
        campaign.answers.push(Instant::now());
        campaign.bytes += bytes;
    }

    /// Creates a campaign every `every` from `first` while one can still be answered before
    /// `last`; returns their ids in order.
    pub(crate) async fn create_every(
        &self,
        api: &AdminClient,
        first: Instant,
        every: Duration,
        last: Instant,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next = first;
        while next <= last {
            tokio::time::sleep_until(next).await;
            let campaign = NewCampaign {
                sql: format!(
                    "SELECT pid, name, path, cmdline FROM processes LIMIT {}; {}",
                    self.rows, self.marker
                ),
                targets: QueryTargets {
                    all: true,
                    ..QueryTargets::default()
                },
                saved_query: None,
                expires_in_seconds: None,
            };
            let created_at = Instant::now();
            let created = api.create_query(&campaign).await?;
            let id = created.query.id.to_string();
            self.tracked
                .lock()
                .expect("campaigns lock")
                .entry(id.clone())
                .or_default()
                .created = Some((created_at, created.targeted));
            ids.push(id);
            next += every;
        }
        Ok(ids)
    }

    /// The report of campaigns `ids`, after reading their results back through the API.
    pub(crate) async fn summarize(
        &self,
        api: &AdminClient,
        ids: &[String],
        run_start: Instant,
    ) -> anyhow::Result<Vec<CampaignSummary>> {
        let mut summaries = Vec::new();
        for id in ids {
            let progress = api.query(id).await?;
            let results = api.all_query_results(id).await?;
            let rows_read_back = results.iter().map(|r| r.rows.len()).sum();
            let tracked = self.tracked.lock().expect("campaigns lock");
            let Some(campaign) = tracked.get(id) else {
                continue;
            };
            let Some((created, targeted)) = campaign.created else {
                continue;
            };
            let mut answers: Vec<Duration> = campaign
                .answers
                .iter()
                .map(|at| at.saturating_duration_since(created))
                .collect();
            answers.sort_unstable();
            let time_to = |share: f64| {
                let needed = ((targeted as f64 * share).ceil() as usize).max(1);
                answers.get(needed - 1).map(Duration::as_secs_f64)
            };
            summaries.push(CampaignSummary {
                id: id.clone(),
                created_at_second: created.saturating_duration_since(run_start).as_secs_f64(),
                targeted,
                answered: answers.len(),
                succeeded: progress.succeeded,
                seconds_to_50: time_to(0.50),
                seconds_to_95: time_to(0.95),
                seconds_to_100: time_to(1.0),
                result_bytes: campaign.bytes,
                rows_read_back,
                rows_expected: answers.len() * self.rows,
            });
        }
        Ok(summaries)
    }
}

/// One line for a person.
pub(crate) fn describe(c: &CampaignSummary) -> String {
    let seconds = |s: Option<f64>| s.map_or("never".to_owned(), |s| format!("{s:.1} s"));
    format!(
        "campaign {} (at {:.0} s): targeted {}, answered {} (the API counts {} succeeded); 50 % in {}, 95 % in {}, 100 % in {}; {} B of results; {} of {} rows read back",
        c.id,
        c.created_at_second,
        c.targeted,
        c.answered,
        c.succeeded,
        seconds(c.seconds_to_50),
        seconds(c.seconds_to_95),
        seconds(c.seconds_to_100),
        c.result_bytes,
        c.rows_read_back,
        c.rows_expected,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_before_the_creator_has_the_id_are_counted() {
        let campaigns = Campaigns::new(3, "run1");
        assert_eq!(
            campaigns.rows_for("SELECT 1; -- sgt loadtest run1"),
            Some(3)
        );
        assert_eq!(campaigns.rows_for("SELECT 1; -- sgt loadtest run2"), None);
        assert_eq!(campaigns.rows_for("SELECT 1;"), None);
        // The creator asked 2 s ago; an agent's answer is recorded before the creator
        // records the campaign's id.
        let created = Instant::now() - Duration::from_secs(2);
        campaigns.answered("q1", 100);
        campaigns
            .tracked
            .lock()
            .unwrap()
            .entry("q1".into())
            .or_default()
            .created = Some((created, 1));
        let tracked = campaigns.tracked.lock().unwrap();
        let q1 = &tracked["q1"];
        assert_eq!((q1.answers.len(), q1.bytes), (1, 100));
        assert!(q1.answers[0].saturating_duration_since(created) >= Duration::from_secs(2));
    }
}
