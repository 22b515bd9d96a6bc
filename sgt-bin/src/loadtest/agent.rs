//! One simulated osquery agent: enroll, then the config, logger and distributed loops with
//! a random phase, re-enrolling on `node_invalid`, until the run's deadline.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::connection::{agent_request, AgentLoop, LoopConnection};
use super::shapes::{self, Os};
use super::stats::{Endpoint, Stats};
use super::{Plan, Transport};
use crate::server::services::agent::{DETAIL_QUERY_PREFIX, LABEL_QUERY_PREFIX};

/// What one request came back with.
enum Answer {
    /// A JSON object without an error.
    Ok(Value),
    /// `{"node_invalid": true}`: the agent must enroll again.
    NodeInvalid,
    /// Anything else; the kind is already recorded.
    Failed,
}

pub(crate) struct Agent {
    plan: Arc<Plan>,
    stats: Arc<Mutex<Stats>>,
    rng: SmallRng,
    os: Os,
    host_identifier: String,
    uuid: String,
    node_key: Option<String>,
    gzip: bool,
    counter: u64,
    /// Lines the server has not acknowledged yet: sent again with the next batch, as
    /// osquery keeps its buffer until the server answers without an error.
    unsent_results: Vec<Value>,
    unsent_status: Vec<Value>,
    /// When this agent uploads a carve, if it was asked for one, and the carve's
    /// (`carve_guid`, `request_id`) it announced in its answer.
    carve_at: Option<Instant>,
    carve_ids: Option<(String, String)>,
    /// In agent mode: a connection per loop, the address it connects from, and the share of
    /// a TLS session its first connections live (its phase in a running fleet).
    connections: [LoopConnection; AgentLoop::COUNT],
    source: Option<IpAddr>,
    session_phase: f64,
}

/// The loop whose connection carries requests to `endpoint`.
fn loop_of(endpoint: Endpoint) -> AgentLoop {
    match endpoint {
        Endpoint::Enroll | Endpoint::Config => AgentLoop::Config,
        Endpoint::Log => AgentLoop::Log,
        Endpoint::DistributedRead | Endpoint::DistributedWrite => AgentLoop::Distributed,
        Endpoint::CarveStart | Endpoint::CarveBlock => AgentLoop::Carve,
    }
}

impl Agent {
    pub(crate) fn new(plan: Arc<Plan>, stats: Arc<Mutex<Stats>>, index: usize) -> Agent {
        let mut rng = SmallRng::seed_from_u64(plan.seed ^ index as u64);
        Agent {
            gzip: rng.random_bool(plan.gzip_share),
            os: Os::for_agent(index),
            host_identifier: format!("loadtest-{}-{index}", plan.run_id),
            uuid: format!("{:08X}-0000-4000-8000-{index:012X}", plan.seed as u32),
            node_key: None,
            counter: 0,
            unsent_results: Vec::new(),
            unsent_status: Vec::new(),
            carve_at: None,
            carve_ids: None,
            connections: Default::default(),
            source: plan.transport.source_for(index),
            session_phase: rng.random_range(0.0..1.0),
            plan,
            stats,
            rng,
        }
    }

    /// Runs until the deadline: enroll, then the three loops.
    pub(crate) async fn run(mut self, start_delay: Duration) {
        let plan = Arc::clone(&self.plan);
        tokio::time::sleep(start_delay).await;
        if !self.enroll_until_deadline().await {
            return;
        }
        let now = Instant::now();
        let mut phase =
            |interval: Duration| now + interval.mul_f64(self.rng.random_range(0.0..1.0));
        let mut next_read = phase(plan.distributed_interval);
        let mut next_config = phase(plan.config_interval);
        let mut next_log = phase(plan.logger_period);
        loop {
            let mut next = next_read.min(next_config).min(next_log);
            if let Some(carve_at) = self.carve_at {
                next = next.min(carve_at);
            }
            if next >= plan.deadline {
                return;
            }
            tokio::time::sleep_until(next).await;
            if self.carve_at == Some(next) {
                self.carve_at = None;
                self.carve().await;
            } else if next == next_read {
                self.distributed().await;
                next_read = Instant::now() + plan.distributed_interval;
            } else if next == next_config {
                self.config().await;
                next_config += plan.config_interval;
            } else {
                self.log().await;
                next_log += plan.logger_period;
            }
        }
    }

    async fn enroll_until_deadline(&mut self) -> bool {
        let mut backoff = Duration::from_millis(500);
        while Instant::now() < self.plan.deadline {
            if self.enroll().await {
                return true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        false
    }

    async fn enroll(&mut self) -> bool {
        let plan = Arc::clone(&self.plan);
        let body = json!({
            "enroll_secret": self.plan.enroll_secret,
            "host_identifier": self.host_identifier,
            "platform_type": self.os.platform_type(),
            "host_details": shapes::host_details(self.os, &self.host_identifier, &self.uuid),
        });
        match self
            .post(Endpoint::Enroll, &plan.paths.enroll, &body, false)
            .await
        {
            Answer::Ok(answer) => match answer["node_key"].as_str() {
                Some(key) => {
                    let first = self.node_key.is_none();
                    self.node_key = Some(key.to_owned());
                    let mut stats = self.stats.lock().expect("stats lock");
                    if first {
                        stats.agents_enrolled += 1;
                    } else {
                        stats.reenrolls += 1;
                    }
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Sends an authenticated request; enrolls again on `node_invalid` (not resending: the
    /// loop's next turn does).
    async fn call(
        &mut self,
        endpoint: Endpoint,
        path: &str,
        body: &mut Value,
        gzip: bool,
    ) -> Answer {
        body["node_key"] = json!(self.node_key.clone().unwrap_or_default());
        let answer = self.post(endpoint, path, body, gzip).await;
        if matches!(answer, Answer::NodeInvalid) {
            self.enroll_until_deadline().await;
        }
        answer
    }

    async fn config(&mut self) {
        let path = self.plan.paths.config.clone();
        self.call(Endpoint::Config, &path, &mut json!({}), false)
            .await;
    }

    async fn log(&mut self) {
        self.counter += 1;
        let lines = self.plan.lines_per_batch;
        let (results, status) =
            shapes::log_lines(&mut self.rng, &self.host_identifier, self.counter, lines);
        {
            let mut stats = self.stats.lock().expect("stats lock");
            stats.result_lines_sent += results.len() as u64;
            stats.status_lines_sent += status.len() as u64;
        }
        self.unsent_results.extend(results);
        self.unsent_status.extend(status);
        let path = self.plan.paths.log.clone();
        let gzip = self.gzip;
        for status_lines in [false, true] {
            let pending = if status_lines {
                std::mem::take(&mut self.unsent_status)
            } else {
                std::mem::take(&mut self.unsent_results)
            };
            if pending.is_empty() {
                continue;
            }
            let count = pending.len() as u64;
            let log_type = if status_lines { "status" } else { "result" };
            let mut body = json!({"log_type": log_type, "data": pending});
            match self.call(Endpoint::Log, &path, &mut body, gzip).await {
                Answer::Ok(_) => {
                    let mut stats = self.stats.lock().expect("stats lock");
                    if status_lines {
                        stats.status_lines_acknowledged += count;
                    } else {
                        stats.result_lines_acknowledged += count;
                    }
                }
                _ => {
                    // Kept for the next period, as osquery keeps its buffer.
                    let kept = match body["data"].take() {
                        Value::Array(lines) => lines,
                        _ => Vec::new(),
                    };
                    if status_lines {
                        self.unsent_status.extend(kept);
                    } else {
                        self.unsent_results.extend(kept);
                    }
                }
            }
        }
    }

    async fn distributed(&mut self) {
        let read_path = self.plan.paths.distributed_read.clone();
        let Answer::Ok(read) = self
            .call(Endpoint::DistributedRead, &read_path, &mut json!({}), false)
            .await
        else {
            return;
        };
        let Some(queries) = read["queries"].as_object().filter(|q| !q.is_empty()) else {
            return;
        };
        let mut results = serde_json::Map::new();
        let mut statuses = serde_json::Map::new();
        // This run's campaigns answered, with the bytes of their rows.
        let mut campaigns_answered = Vec::new();
        for (id, sql) in queries {
            let campaign_rows = match (&self.plan.campaigns, sql.as_str()) {
                (Some(campaigns), Some(sql)) => campaigns.rows_for(sql),
                _ => None,
            };
            let rows = if let Some(count) = campaign_rows {
                let rows = json!(shapes::query_rows_exactly(&mut self.rng, count));
                campaigns_answered.push((id.clone(), rows.to_string().len() as u64));
                rows
            } else if let Some(key) = id.strip_prefix(DETAIL_QUERY_PREFIX) {
                shapes::detail_rows(self.os, &self.host_identifier, &self.uuid, key)
            } else if let Some(label) = id.strip_prefix(LABEL_QUERY_PREFIX) {
                shapes::label_rows(&self.uuid, label)
            } else if sql.as_str().is_some_and(asks_for_carve) {
                self.schedule_carve()
            } else {
                json!(shapes::query_rows(&mut self.rng))
            };
            results.insert(id.clone(), rows);
            statuses.insert(id.clone(), json!(0));
        }
        let answered = queries.len() as u64;
        let write_path = self.plan.paths.distributed_write.clone();
        let mut body = json!({"queries": results, "statuses": statuses});
        if let Answer::Ok(_) = self
            .call(Endpoint::DistributedWrite, &write_path, &mut body, false)
            .await
        {
            self.stats.lock().expect("stats lock").queries_answered += answered;
            if let Some(campaigns) = &self.plan.campaigns {
                for (id, bytes) in campaigns_answered {
                    campaigns.answered(&id, bytes);
                }
            }
        }
    }

    /// Answers a live query on the `carves` table as osquery does: when the run still has a
    /// carve to give (`--carves`), a row scheduling a carve with a fresh `carve_guid` and
    /// `request_id`, uploaded a moment later (osquery's scheduler starts it within a minute);
    /// otherwise no rows.
    fn schedule_carve(&mut self) -> Value {
        let taken = self
            .plan
            .carves_left
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |left| left.checked_sub(1),
            )
            .is_ok();
        if !taken || self.carve_ids.is_some() {
            return json!([]);
        }
        let guid = format!(
            "{:08x}-0000-4000-8000-000000000000",
            self.rng.random::<u32>()
        );
        let request_id = format!(
            "{:08x}-0000-4000-9000-000000000000",
            self.rng.random::<u32>()
        );
        let row = json!([{"carve": "1", "carve_guid": guid, "request_id": request_id,
            "path": "/var/log/loadtest", "status": "SCHEDULED", "size": "-1", "sha256": "", "time": "0"}]);
        self.carve_ids = Some((guid, request_id));
        self.carve_at = Some(Instant::now() + Duration::from_millis(200));
        row
    }

    /// Uploads the carve it was asked for as osquery's carver does: start, then the blocks
    /// (no node key), on a connection of its own that ends with the upload.
    async fn carve(&mut self) {
        self.upload_carve().await;
        self.connections[AgentLoop::Carve as usize].close();
    }

    async fn upload_carve(&mut self) {
        let Some((guid, request_id)) = self.carve_ids.clone() else {
            return;
        };
        let size = self.plan.carve_bytes;
        let block_size = self.plan.carve_block_bytes.max(1);
        let archive: Vec<u8> = (0..size).map(|_| self.rng.random()).collect();
        let block_count = size.div_ceil(block_size).max(1);
        let mut start = json!({
            "block_count": block_count, "block_size": block_size, "carve_size": size,
            "carve_id": guid, "request_id": request_id,
        });
        let path = self.plan.paths.carve_start.clone();
        let Answer::Ok(started) = self
            .call(Endpoint::CarveStart, &path, &mut start, false)
            .await
        else {
            return;
        };
        let Some(session) = started["session_id"].as_str().map(str::to_owned) else {
            return;
        };
        let path = self.plan.paths.carve_block.clone();
        for (i, block) in archive.chunks(block_size).enumerate() {
            let body = json!({
                "block_id": i, "session_id": session,
                "request_id": request_id,
                "data": base64::engine::general_purpose::STANDARD.encode(block),
            });
            if !matches!(
                self.post(Endpoint::CarveBlock, &path, &body, false).await,
                Answer::Ok(_)
            ) {
                return;
            }
        }
        self.stats.lock().expect("stats lock").carves_completed += 1;
    }

    /// POSTs `body` (gzip-compressed when asked), records the outcome, and classifies it.
    async fn post(&mut self, endpoint: Endpoint, path: &str, body: &Value, gzip: bool) -> Answer {
        let mut bytes = serde_json::to_vec(body).expect("JSON body");
        if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&bytes).expect("gzip into memory");
            bytes = encoder.finish().expect("gzip into memory");
        }
        let sent = bytes.len() as u64;
        let started = Instant::now();
        let outcome = match &self.plan.transport {
            Transport::Pooled { client, slots } => {
                let mut request = client
                    .post(format!("{}{path}", self.plan.base_url))
                    .header("content-type", "application/json")
                    .header("user-agent", "osquery/5.23.1");
                if gzip {
                    request = request.header("content-encoding", "gzip");
                }
                // Held until the answer is read, so the pool never needs more connections.
                let _slot = slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                match request.body(bytes).send().await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(received) => Ok((status, received)),
                            Err(e) => Err(transport_kind(&e)),
                        }
                    }
                    Err(e) => Err(transport_kind(&e)),
                }
            }
            Transport::Agent(connector) => {
                let body = Bytes::from(bytes);
                self.connections[loop_of(endpoint) as usize]
                    .send(connector, self.source, self.session_phase, || {
                        agent_request(connector, path, &body, gzip)
                    })
                    .await
            }
        };
        let latency = started.elapsed();
        let (answer, error, received) = match outcome {
            Err(kind) => (Answer::Failed, Some(kind), 0),
            Ok((status, received)) => {
                let length = received.len() as u64;
                match serde_json::from_slice::<Value>(&received) {
                    Ok(value) if value.get("node_invalid") == Some(&json!(true)) => {
                        (Answer::NodeInvalid, None, length)
                    }
                    Ok(value) if value.is_object() && value.get("error").is_none() => {
                        if status.is_success() {
                            (Answer::Ok(value), None, length)
                        } else {
                            (
                                Answer::Failed,
                                Some(format!("http {}", status.as_u16())),
                                length,
                            )
                        }
                    }
                    Ok(_) => (
                        Answer::Failed,
                        Some(format!("http {} error body", status.as_u16())),
                        length,
                    ),
                    Err(_) if received.is_empty() => (
                        Answer::Failed,
                        Some(format!("http {} empty body", status.as_u16())),
                        0,
                    ),
                    Err(_) => (
                        Answer::Failed,
                        Some(format!("http {} non-JSON body", status.as_u16())),
                        length,
                    ),
                }
            }
        };
        let mut stats = self.stats.lock().expect("stats lock");
        stats.record(endpoint, latency, error.as_deref());
        stats.bytes_sent += sent;
        stats.bytes_received += received;
        answer
    }
}

fn transport_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

/// Whether live query `sql` reads osquery's `carves` table with `carve = 1`, which makes
/// osquery schedule a carve.
fn asks_for_carve(sql: &str) -> bool {
    let sql = sql.to_ascii_lowercase();
    sql.contains("carves") && sql.replace(' ', "").contains("carve=1")
}
