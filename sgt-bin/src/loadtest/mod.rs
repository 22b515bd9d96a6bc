//! `sgt loadtest`: simulated osquery agents against any osquery TLS server.
//!
//! Every agent enrolls with realistic host details, then runs osquery's three loops (config,
//! logger, distributed) with a random phase until the run ends, each loop on a kept-alive
//! connection of its own as osquery holds them (`connection.rs`). Latency is measured per
//! endpoint; the report gives counts, errors by kind, percentiles, bytes and log-line
//! accounting, as a table, JSON (`--out`) and a self-contained HTML page (`--html`).
//! `--assert-*` thresholds make the command fail, for CI gates.

mod agent;
mod campaigns;
mod connection;
mod cpu;
mod html;
mod shapes;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use campaigns::{CampaignSummary, Campaigns};
pub use connection::ConnectionMode;
use connection::{ConnectionCounters, ConnectionSummary, Connector, ConnectorOptions};
pub use cpu::process_cpu_ms;
use stats::{Endpoint, EndpointSummary, Stats};

/// `sgt loadtest` options.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// The server, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "SGT_URL")]
    url: String,
    /// The enroll secret, or @FILE to read it from a file.
    #[arg(long)]
    enroll_secret: String,
    /// CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, env = "SGT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Accept any server certificate (for self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// How long to run, e.g. 60s or 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Agents start spread over this long (0s: all at once, a thundering herd).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// Distributed read interval (osquery's --distributed_interval).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    distributed_interval: Duration,
    /// Config fetch interval (osquery's --config_refresh).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    config_interval: Duration,
    /// Log flush interval (osquery's --logger_tls_period).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    logger_period: Duration,
    /// Result rows per log batch.
    #[arg(long, default_value_t = 5)]
    lines_per_batch: usize,
    /// Share of agents that gzip their log bodies (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    gzip_share: f64,
    /// Most agents that upload a carve during the run: an agent uploads one when a live
    /// query on the `carves` table asks it to (request them with `sgt carve request` or a
    /// campaign), as osquery does; the server accepts only carves it asked for.
    #[arg(long, default_value_t = 0)]
    carves: usize,
    /// Size of each carve in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    carve_bytes: usize,
    /// Carve block size in bytes (osquery's --carver_block_size).
    #[arg(long, default_value_t = 300_000)]
    carve_block_bytes: usize,
    /// How agents connect: `agent`, each agent holding a kept-alive connection per loop
    /// (config, logger, distributed; one more while carving) as osquery does, about three per
    /// agent; or `pooled`, every agent sharing `--connections`.
    #[arg(long, value_enum, default_value = "agent")]
    connection_mode: ConnectionMode,
    /// Pooled mode: connections to the server, kept open and shared by every agent; at most
    /// this many requests are in flight at once, and a request waiting for a free one counts
    /// that wait in its latency.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Agent mode: how long an agent keeps a connection before opening a new one (osquery's
    /// --tls_session_timeout). Each agent's first connections live a random part of it, so
    /// renewals spread over time as in a running fleet.
    #[arg(long, default_value = "3600s", value_parser = humantime::parse_duration)]
    tls_session_timeout: Duration,
    /// Request timeout.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Create a live query for every node this often, from the end of the ramp, through the
    /// admin API (sgt's; needs --admin-token or --admin-password-file). Agents answer it with
    /// --live-query-rows rows each; the report follows each campaign to 50, 95 and 100 % of
    /// its nodes' answers and reads its results back through the API.
    #[arg(long, value_parser = humantime::parse_duration)]
    live_query_every: Option<Duration>,
    /// Rows each agent answers a live query of the run with.
    #[arg(long, default_value_t = 10)]
    live_query_rows: usize,
    /// A bearer token for the admin API (operator or admin), for --live-query-every.
    #[arg(long, hide_env_values = true, env = "SGT_LOADTEST_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Or a file holding user `admin`'s password (`sgt serve` writes one to its data
    /// directory on first start), to log in with.
    #[arg(long)]
    admin_password_file: Option<PathBuf>,
    /// Fail when a campaign was not answered by every node it targeted, or not all its rows
    /// could be read back through the admin API.
    #[arg(long, requires = "live_query_every")]
    assert_campaigns_answered: bool,
    /// Fail when a campaign took longer than this many seconds to reach 95 % of its nodes.
    #[arg(long, requires = "live_query_every")]
    assert_campaign_p95_s: Option<f64>,
    /// Endpoint paths, for servers other than sgt.
    #[arg(long, default_value = crate::server::paths::ENROLL)]
    enroll_path: String,
    #[arg(long, default_value = crate::server::paths::CONFIG)]
    config_path: String,
    #[arg(long, default_value = crate::server::paths::LOG)]
    log_path: String,
    #[arg(long, default_value = crate::server::paths::DISTRIBUTED_READ)]
    distributed_read_path: String,
    #[arg(long, default_value = crate::server::paths::DISTRIBUTED_WRITE)]
    distributed_write_path: String,
    #[arg(long, default_value = crate::server::paths::CARVE_START)]
    carve_start_path: String,
    #[arg(long, default_value = crate::server::paths::CARVE_CONTINUE)]
    carve_block_path: String,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a self-contained HTML page plotting the run here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Count the acknowledged log lines in this file log sink directory afterwards (sgt's
    /// local backend writes JSON Lines there), to prove none was lost.
    #[arg(long)]
    sink_dir: Option<PathBuf>,
    /// Fail when more than this share of requests failed (0 to 1).
    #[arg(long)]
    assert_error_rate: Option<f64>,
    /// Fail when any endpoint's p99 latency is above this many milliseconds.
    #[arg(long)]
    assert_p99_ms: Option<f64>,
    /// Fail when an acknowledged log line is missing from --sink-dir.
    #[arg(long, requires = "sink_dir")]
    assert_no_lost_lines: bool,
    /// Seed for the agents' randomness (same seed, same fleet).
    #[arg(long)]
    seed: Option<u64>,
    /// Sweep mode: run a stage of `--duration` for each agent count (e.g. 1000,2000,5000),
    /// stopping at the first stage that does not hold; reports the highest that held.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<usize>,
    /// A sweep stage holds while at most this share of its requests fail.
    #[arg(long, default_value_t = 0.001)]
    sweep_max_error_rate: f64,
    /// A sweep stage holds while every endpoint's p99 is at most this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    sweep_max_p99_ms: f64,
    /// The server's process id, when it runs on this machine: the report then gives its CPU
    /// time per 1,000 requests over the steady part of the run (from `/proc`, Linux).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// One sweep stage's outcome.
#[derive(Debug, Serialize)]
struct SweepStage {
    agents: usize,
    held: bool,
    requests_per_second: f64,
    error_rate: f64,
    worst_p99_ms: f64,
    /// CPU per 1,000 requests over the stage's steady part.
    cpu: Option<cpu::CpuWindow>,
}

/// The JSON report of a sweep.
#[derive(Debug, Serialize)]
struct SweepReport {
    stages: Vec<SweepStage>,
    highest_held: Option<usize>,
    reports: Vec<Report>,
}

/// Endpoint paths.
#[derive(Debug)]
struct Paths {
    enroll: String,
    config: String,
    log: String,
    distributed_read: String,
    distributed_write: String,
    carve_start: String,
    carve_block: String,
}

/// How the agents' requests reach the server.
#[derive(Debug)]
enum Transport {
    /// One shared pool of kept-alive connections, one permit per connection.
    Pooled {
        client: reqwest::Client,
        slots: tokio::sync::Semaphore,
    },
    /// Each agent its own connections.
    Agent(Connector),
}

impl Transport {
    /// The address agent `index` connects from, when it has its own.
    fn source_for(&self, index: usize) -> Option<std::net::IpAddr> {
        match self {
            Transport::Agent(connector) => connector.source_for(index),
            Transport::Pooled { .. } => None,
        }
    }

    /// The agent-mode connection counters.
    fn counters(&self) -> Option<&ConnectionCounters> {
        match self {
            Transport::Agent(connector) => Some(&connector.counters),
            Transport::Pooled { .. } => None,
        }
    }
}

/// Everything the simulated agents share.
#[derive(Debug)]
struct Plan {
    transport: Transport,
    base_url: String,
    paths: Paths,
    enroll_secret: String,
    run_id: String,
    seed: u64,
    start: Instant,
    deadline: Instant,
    distributed_interval: Duration,
    config_interval: Duration,
    logger_period: Duration,
    lines_per_batch: usize,
    gzip_share: f64,
    /// The run's live queries (`--live-query-every`).
    campaigns: Option<Campaigns>,
    /// Carves the run may still upload (`--carves`), taken by the first agents asked.
    carves_left: std::sync::atomic::AtomicUsize,
    carve_bytes: usize,
    carve_block_bytes: usize,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    url: String,
    run_id: String,
    agents: usize,
    duration_seconds: f64,
    endpoints: Vec<EndpointSummary>,
    total_requests: u64,
    total_errors: u64,
    requests_per_second: f64,
    bytes_sent: u64,
    bytes_received: u64,
    agents_enrolled: u64,
    reenrolls: u64,
    result_lines_sent: u64,
    status_lines_sent: u64,
    lines_acknowledged: u64,
    lines_in_sink: Option<u64>,
    lines_lost: Option<u64>,
    queries_answered: u64,
    carves_completed: u64,
    /// How the agents connected, and (agent mode) how many connections they held and opened.
    connections: ConnectionSummary,
    /// The live queries of the run (`--live-query-every`).
    campaigns: Vec<CampaignSummary>,
    /// CPU per 1,000 requests from the end of the ramp plus the longest loop interval (every
    /// agent running all its loops) to the end; absent when the run is too short for that.
    cpu: Option<cpu::CpuWindow>,
    /// Per second: one point per endpoint, in `endpoints` order.
    timeline: Vec<Vec<stats::SecondPoint>>,
    failed_assertions: Vec<String>,
}

fn read_secret(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(file) => Ok(std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the enroll secret from {file}"))?
            .trim()
            .to_owned()),
        None => Ok(value.to_owned()),
    }
}

/// The agents' way to the server, as `--connection-mode` says.
async fn transport(args: &LoadtestArgs) -> anyhow::Result<Transport> {
    Ok(match args.connection_mode {
        ConnectionMode::Pooled => Transport::Pooled {
            client: client(args)?,
            slots: tokio::sync::Semaphore::new(args.connections.max(1)),
        },
        ConnectionMode::Agent => Transport::Agent(
            Connector::new(ConnectorOptions {
                url: &args.url,
                ca_cert: args.ca_cert.as_deref(),
                insecure: args.insecure,
                request_timeout: args.timeout,
                session_timeout: args.tls_session_timeout,
            })
            .await?,
        ),
    })
}

/// An admin API client for the run's live queries: with `--admin-token`, or logged in as
/// `admin` with the password in `--admin-password-file`.
async fn admin_client(args: &LoadtestArgs) -> anyhow::Result<crate::cli::client::AdminClient> {
    use crate::cli::client::AdminClient;
    let token = match (&args.admin_token, &args.admin_password_file) {
        (Some(token), _) => token.clone(),
        (None, Some(file)) => {
            let password = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim()
                .to_owned();
            AdminClient::new(&args.url, None, args.ca_cert.as_deref())?
                .login(&crate::admin_types::LoginRequest {
                    username: "admin".into(),
                    password,
                })
                .await
                .context("cannot log in to the admin API for --live-query-every")?
                .token
        }
        (None, None) => {
            bail!("--live-query-every needs --admin-token or --admin-password-file")
        }
    };
    AdminClient::new(&args.url, Some(token), args.ca_cert.as_deref())
}

/// Raises the open-files limit as far as it goes and, in agent mode, refuses before anything
/// starts a fleet whose connections would not fit in it.
fn check_open_files(args: &LoadtestArgs) -> anyhow::Result<()> {
    let limit = crate::open_files::raise_to_hard_limit()?;
    if args.connection_mode == ConnectionMode::Agent {
        let largest = args.sweep.iter().copied().max().unwrap_or(args.agents);
        connection::check_sockets_fit(largest, args.carves > 0, limit)?;
    }
    Ok(())
}

fn client(args: &LoadtestArgs) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(args.connections)
        .timeout(args.timeout)
        .connect_timeout(Duration::from_secs(10));
    if let Some(ca) = &args.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .tls_built_in_root_certs(false);
    }
    if args.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder.build()?)
}

/// Runs the load test; the error lists failed assertions.
///
/// # Errors
/// Bad options, an unreadable secret or CA file, or failed `--assert-*` thresholds.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    check_open_files(&args)?;
    if args.sweep.is_empty() {
        let report = run_stage(&args, args.agents).await?;
        return finish(&args, &report);
    }
    let mut sweep = SweepReport {
        stages: Vec::new(),
        highest_held: None,
        reports: Vec::new(),
    };
    for &agents in &args.sweep {
        let report = run_stage(&args, agents).await?;
        let error_rate = report.total_errors as f64 / report.total_requests.max(1) as f64;
        let worst_p99_ms = report
            .endpoints
            .iter()
            .filter(|e| e.requests > 0)
            .map(|e| e.p99_ms)
            .fold(0.0, f64::max);
        let held = error_rate <= args.sweep_max_error_rate
            && worst_p99_ms <= args.sweep_max_p99_ms
            && report.agents_enrolled == agents as u64;
        println!(
            "stage {agents} agents: {} ({:.1} req/s, error rate {error_rate:.4}, worst p99 {worst_p99_ms:.1} ms)",
            if held { "held" } else { "did not hold" },
            report.requests_per_second
        );
        if let Some(cpu) = &report.cpu {
            println!("  {}", describe_cpu(cpu));
        }
        sweep.stages.push(SweepStage {
            agents,
            held,
            requests_per_second: report.requests_per_second,
            error_rate,
            worst_p99_ms,
            cpu: report.cpu.clone(),
        });
        sweep.reports.push(report);
        if !held {
            break;
        }
        sweep.highest_held = Some(agents);
    }
    match sweep.highest_held {
        Some(agents) => println!("highest stage that held: {agents} agents"),
        None => println!("no stage held"),
    }
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&sweep)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(path), Some(last)) = (&args.html, sweep.reports.last()) {
        std::fs::write(path, html::render(last))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Prints a steady run's report, writes its files, and fails on crossed thresholds.
fn finish(args: &LoadtestArgs, report: &Report) -> anyhow::Result<()> {
    print_report(report);
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !report.failed_assertions.is_empty() {
        bail!("{}", report.failed_assertions.join("; "));
    }
    Ok(())
}

/// Runs `agents` simulated agents for `--duration`; returns the report, assertions checked.
async fn run_stage(args: &LoadtestArgs, agents: usize) -> anyhow::Result<Report> {
    if agents == 0 {
        bail!("--agents must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.gzip_share) {
        bail!("--gzip-share must be between 0 and 1");
    }
    for (name, interval) in [
        ("--distributed-interval", args.distributed_interval),
        ("--config-interval", args.config_interval),
        ("--logger-period", args.logger_period),
    ] {
        if interval.is_zero() {
            bail!("{name} must be more than 0s");
        }
    }
    let admin = match args.live_query_every {
        Some(_) => Some(admin_client(args).await?),
        None => None,
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let start = Instant::now();
    let plan = Arc::new(Plan {
        transport: transport(args).await?,
        base_url: args.url.trim_end_matches('/').to_owned(),
        paths: Paths {
            enroll: args.enroll_path.clone(),
            config: args.config_path.clone(),
            log: args.log_path.clone(),
            distributed_read: args.distributed_read_path.clone(),
            distributed_write: args.distributed_write_path.clone(),
            carve_start: args.carve_start_path.clone(),
            carve_block: args.carve_block_path.clone(),
        },
        enroll_secret: read_secret(&args.enroll_secret)?,
        run_id: format!("{:08x}", seed as u32),
        seed,
        start,
        deadline: start + args.duration,
        distributed_interval: args.distributed_interval,
        config_interval: args.config_interval,
        logger_period: args.logger_period,
        lines_per_batch: args.lines_per_batch.max(1),
        gzip_share: args.gzip_share,
        campaigns: args
            .live_query_every
            .map(|_| Campaigns::new(args.live_query_rows.max(1), &format!("{:08x}", seed as u32))),
        carves_left: std::sync::atomic::AtomicUsize::new(args.carves),
        carve_bytes: args.carve_bytes,
        carve_block_bytes: args.carve_block_bytes,
    });
    let stats = Arc::new(Mutex::new(Stats::new()));
    eprintln!(
        "sgt loadtest: {} agents against {} for {} (run {})",
        agents,
        plan.base_url,
        humantime::format_duration(args.duration),
        plan.run_id
    );
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..agents {
        let delay = args.ramp.mul_f64(index as f64 / agents as f64);
        let agent = agent::Agent::new(Arc::clone(&plan), Arc::clone(&stats), index);
        tasks.spawn(agent.run(delay));
    }
    // Live queries from the end of the ramp, while the agents can still answer them.
    let creator = match (args.live_query_every, &admin) {
        (Some(every), Some(api)) => {
            let (plan, api) = (Arc::clone(&plan), api.clone());
            let first = plan.start + args.ramp + Duration::from_secs(1);
            let last = plan
                .deadline
                .checked_sub(args.distributed_interval * 2 + Duration::from_secs(2))
                .unwrap_or(plan.start);
            Some(tokio::spawn(async move {
                match &plan.campaigns {
                    Some(campaigns) => campaigns.create_every(&api, first, every, last).await,
                    None => Ok(Vec::new()),
                }
            }))
        }
        _ => None,
    };
    let steady_from = steady_window_start(args);
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    if let Some(pid) = &server_pid {
        cpu::process_cpu_ms(pid)
            .with_context(|| format!("cannot read the CPU time of --server-pid {pid}"))?;
    }
    let (cpu_window, open_peak) =
        progress(&stats, &plan, agents, steady_from, server_pid.as_deref()).await;
    // Agents stop at the deadline; one still waiting on the server has `--timeout` left.
    let _ = tokio::time::timeout(args.timeout + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let elapsed = start.elapsed().as_secs_f64();

    let campaign_ids = match creator {
        Some(creator) => creator
            .await
            .context("the live query task failed")?
            .context("cannot create a live query")?,
        None => Vec::new(),
    };
    let campaigns =
        match (&plan.campaigns, &admin) {
            (Some(campaigns), Some(api)) => campaigns
                .summarize(api, &campaign_ids, plan.start)
                .await
                .context("cannot read the live queries back through the admin API")?,
            _ => Vec::new(),
        };
    let stats = stats.lock().expect("stats lock");
    let mut report = build_report(agents, &plan, &stats, elapsed);
    report.campaigns = campaigns;
    report.cpu = cpu_window;
    report.connections = connection_summary(args.connection_mode, &plan, open_peak, elapsed);
    if let Some(dir) = &args.sink_dir {
        let found = count_sink_lines(dir, &format!("loadtest-{}-", plan.run_id))?;
        report.lines_in_sink = Some(found);
        report.lines_lost = Some(report.lines_acknowledged.saturating_sub(found));
    }
    report.failed_assertions = failed_assertions(args, agents, &report);
    Ok(report)
}

/// The second of the run from which every agent runs all its loops: the ramp plus the longest
/// interval, or just the ramp when that leaves under 10 s; `None` when the ramp fills the run.
fn steady_window_start(args: &LoadtestArgs) -> Option<u64> {
    let longest = args
        .distributed_interval
        .max(args.config_interval)
        .max(args.logger_period);
    let run = args.duration.as_secs();
    let after_ramp = args.ramp.as_secs_f64().ceil() as u64;
    let settled = after_ramp + longest.as_secs_f64().ceil() as u64;
    if settled + 10 <= run {
        Some(settled)
    } else if after_ramp < run {
        Some(after_ramp)
    } else {
        None
    }
}

/// What the report says about the run's connections.
fn connection_summary(
    mode: ConnectionMode,
    plan: &Plan,
    open_peak: Option<u64>,
    elapsed: f64,
) -> ConnectionSummary {
    use std::sync::atomic::Ordering::Relaxed;
    let counters = plan.transport.counters();
    let handshakes = counters.map(|c| c.opened.load(Relaxed));
    ConnectionSummary {
        mode,
        open_peak,
        handshakes,
        handshakes_per_second: handshakes.map(|h| h as f64 / elapsed.max(f64::EPSILON)),
        reconnects: counters.map(|c| c.reconnects.load(Relaxed)),
        session_renewals: counters.map(|c| c.renewals.load(Relaxed)),
    }
}

/// Closes a timeline second every second and prints a progress line (every second on a
/// terminal, every 10 s otherwise), until the deadline. Returns the CPU used per 1,000
/// requests from second `steady_from` to the end, and (agent mode) the most connections
/// seen open at once.
async fn progress(
    stats: &Mutex<Stats>,
    plan: &Plan,
    agents: usize,
    steady_from: Option<u64>,
    server_pid: Option<&str>,
) -> (Option<cpu::CpuWindow>, Option<u64>) {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let mut tick =
        tokio::time::interval_at(plan.start + Duration::from_secs(1), Duration::from_secs(1));
    let mut second = 0u64;
    let mut completed = 0u64;
    let mut steady_start = None;
    if steady_from == Some(0) {
        steady_start = Some(cpu::CpuSample::take(server_pid, 0, 0));
    }
    let counters = plan.transport.counters();
    let mut open_peak = counters.map(|_| 0u64);
    while Instant::now() < plan.deadline {
        tick.tick().await;
        second += 1;
        let open = counters.map(|c| c.open.load(std::sync::atomic::Ordering::Relaxed));
        if let (Some(peak), Some(open)) = (&mut open_peak, open) {
            *peak = (*peak).max(open);
        }
        let mut stats = stats.lock().expect("stats lock");
        stats.close_second();
        let (requests, errors, p99) = stats.last_second();
        completed += requests;
        if steady_from == Some(second) {
            steady_start = Some(cpu::CpuSample::take(server_pid, second, completed));
        }
        if terminal || second.is_multiple_of(10) {
            let connections = open.map_or(String::new(), |open| format!("  {open} connections"));
            let line = format!(
                "{second:>5}s  agents {}/{agents}{connections}  {requests} req/s  {errors} errors/s  p99 {p99:.1} ms",
                stats.agents_enrolled
            );
            if terminal {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    if terminal {
        eprintln!();
    }
    let end = cpu::CpuSample::take(server_pid, second, completed);
    let window = steady_start.and_then(|start| cpu::CpuWindow::between(&start, &end));
    (window, open_peak)
}

fn build_report(agents: usize, plan: &Plan, stats: &Stats, elapsed: f64) -> Report {
    let endpoints: Vec<EndpointSummary> = Endpoint::ALL
        .iter()
        .map(|e| stats.summary(*e, elapsed))
        .collect();
    let total_requests: u64 = endpoints.iter().map(|e| e.requests).sum();
    Report {
        url: plan.base_url.clone(),
        run_id: plan.run_id.clone(),
        agents,
        duration_seconds: elapsed,
        total_errors: endpoints.iter().map(|e| e.errors).sum(),
        requests_per_second: total_requests as f64 / elapsed.max(f64::EPSILON),
        total_requests,
        endpoints,
        bytes_sent: stats.bytes_sent,
        bytes_received: stats.bytes_received,
        agents_enrolled: stats.agents_enrolled,
        reenrolls: stats.reenrolls,
        result_lines_sent: stats.result_lines_sent,
        status_lines_sent: stats.status_lines_sent,
        lines_acknowledged: stats.result_lines_acknowledged + stats.status_lines_acknowledged,
        lines_in_sink: None,
        lines_lost: None,
        queries_answered: stats.queries_answered,
        carves_completed: stats.carves_completed,
        connections: connection_summary(ConnectionMode::Pooled, plan, None, elapsed),
        campaigns: Vec::new(),
        cpu: None,
        timeline: stats.timeline.clone(),
        failed_assertions: Vec::new(),
    }
}

/// Log records in a file sink directory whose line came from this run's agents.
fn count_sink_lines(dir: &Path, host_prefix: &str) -> anyhow::Result<u64> {
    let mut found = 0;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for record in text.lines() {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(record) else {
                continue;
            };
            if record["line"]["hostIdentifier"]
                .as_str()
                .is_some_and(|h| h.starts_with(host_prefix))
            {
                found += 1;
            }
        }
    }
    Ok(found)
}

fn failed_assertions(args: &LoadtestArgs, agents: usize, report: &Report) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(limit) = args.assert_error_rate {
        let rate = report.total_errors as f64 / report.total_requests.max(1) as f64;
        if rate > limit {
            failed.push(format!("error rate {rate:.4} is above {limit}"));
        }
        if report.agents_enrolled < agents as u64 {
            failed.push(format!(
                "only {} of {agents} agents enrolled",
                report.agents_enrolled
            ));
        }
    }
    if let Some(limit) = args.assert_p99_ms {
        for e in report.endpoints.iter().filter(|e| e.requests > 0) {
            if e.p99_ms > limit {
                failed.push(format!(
                    "{} p99 {:.1} ms is above {limit} ms",
                    e.endpoint, e.p99_ms
                ));
            }
        }
    }
    if args.assert_campaigns_answered {
        if report.campaigns.is_empty() {
            failed.push("no live query ran (the run is too short for --live-query-every)".into());
        }
        for c in &report.campaigns {
            if c.seconds_to_100.is_none() || c.answered < c.targeted {
                failed.push(format!(
                    "campaign {} was answered by {} of {} nodes",
                    c.id, c.answered, c.targeted
                ));
            }
            if c.rows_read_back != c.rows_expected {
                failed.push(format!(
                    "campaign {}: {} of {} result rows read back",
                    c.id, c.rows_read_back, c.rows_expected
                ));
            }
        }
    }
    if let Some(limit) = args.assert_campaign_p95_s {
        for c in &report.campaigns {
            match c.seconds_to_95 {
                Some(s) if s <= limit => {}
                reached => failed.push(format!(
                    "campaign {} reached 95 % of its nodes in {}, not within {limit} s",
                    c.id,
                    reached.map_or("never".to_owned(), |s| format!("{s:.1} s"))
                )),
            }
        }
    }
    if args.assert_no_lost_lines {
        if let Some(lost) = report.lines_lost.filter(|l| *l > 0) {
            failed.push(format!("{lost} acknowledged log lines are not in the sink"));
        }
    }
    failed
}

/// One line about an agent-mode run's connections.
fn describe_connections(c: &ConnectionSummary) -> Option<String> {
    Some(format!(
        "connections (one per agent loop): at most {} open; {} opened ({:.1}/s); {} reconnects after the server closed one; {} TLS session renewals",
        c.open_peak?,
        c.handshakes?,
        c.handshakes_per_second?,
        c.reconnects?,
        c.session_renewals?,
    ))
}

/// One line: the steady window's request rate and CPU per 1,000 requests.
fn describe_cpu(cpu: &cpu::CpuWindow) -> String {
    let per_1000 = |ms: Option<f64>, cores: Option<f64>| match (ms, cores) {
        (Some(ms), Some(cores)) => format!("{ms:.1} ms ({:.0} % of a core)", cores * 100.0),
        _ => "not measured".to_owned(),
    };
    format!(
        "steady window {}s to {}s: {} requests ({:.1}/s); CPU per 1,000 requests: server {}, loadtest {}",
        cpu.from_second,
        cpu.to_second,
        cpu.requests,
        cpu.requests_per_second,
        per_1000(cpu.server_cpu_ms_per_1000_requests, cpu.server_cores),
        per_1000(cpu.loadtest_cpu_ms_per_1000_requests, cpu.loadtest_cores),
    )
}

fn print_report(report: &Report) {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "ENDPOINT", "REQUESTS", "ERRORS", "REQ/S", "P50 MS", "P95 MS", "P99 MS", "MAX MS",
        ]);
    for e in report.endpoints.iter().filter(|e| e.requests > 0) {
        table.add_row([
            e.endpoint.to_owned(),
            e.requests.to_string(),
            e.errors.to_string(),
            format!("{:.1}", e.requests_per_second),
            format!("{:.2}", e.p50_ms),
            format!("{:.2}", e.p95_ms),
            format!("{:.2}", e.p99_ms),
            format!("{:.2}", e.max_ms),
        ]);
    }
    println!("{table}");
    for e in &report.endpoints {
        for (kind, count) in &e.errors_by_kind {
            println!("errors: {} {kind}: {count}", e.endpoint);
        }
    }
    println!(
        "{} requests in {:.1} s ({:.1}/s), {} errors; sent {} B, received {} B",
        report.total_requests,
        report.duration_seconds,
        report.requests_per_second,
        report.total_errors,
        report.bytes_sent,
        report.bytes_received
    );
    println!(
        "agents enrolled {} (re-enrolls {}); log lines sent {}, acknowledged {}{}; live queries answered {}; carves {}",
        report.agents_enrolled,
        report.reenrolls,
        report.result_lines_sent + report.status_lines_sent,
        report.lines_acknowledged,
        match (report.lines_in_sink, report.lines_lost) {
            (Some(found), Some(lost)) => format!(", in the sink {found}, lost {lost}"),
            _ => String::new(),
        },
        report.queries_answered,
        report.carves_completed
    );
    if let Some(line) = describe_connections(&report.connections) {
        println!("{line}");
    }
    for campaign in &report.campaigns {
        println!("{}", campaigns::describe(campaign));
    }
    if let Some(cpu) = &report.cpu {
        println!("{}", describe_cpu(cpu));
    }
    for failure in &report.failed_assertions {
        println!("FAILED: {failure}");
    }
}
