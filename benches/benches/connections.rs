//! What an agent's kept-alive TLS connection costs a server, for `sgt serve` and for a bare
//! warp + rustls server, side by side in one run with one client:
//! - memory: the server's resident set before and after N connections each make one empty
//!   distributed read and then idle, per connection;
//! - CPU: the server's user plus system time per 1,000 empty distributed reads sent on
//!   kept-alive connections.
//!
//! Run: `cargo bench -p sgt-benches --bench connections -- --connections 8000`
//! (`--requests N` reads for the CPU figure, `--rounds N` alternations of the two servers).
//! Under `cargo test` (no `--bench`) it runs once with a handful of connections, as a check
//! that it works.
//!
//! Each server runs in a child process (this executable, started again with
//! `SGT_BENCH_SERVER` set), so its resident set and CPU time are its own. The sgt server is
//! `sgt_bin::serve::start` with the defaults `sgt serve` has (SQLite, a generated
//! certificate); the bare server is warp's service on hyper-util's connection builder behind
//! tokio-rustls with the same TLS settings, answering `{"queries":{}}` to every read.

// `sgt_bin::serve::start` instantiates the server's warp filter chain, which nests deeper
// than the default limit in release builds.
#![recursion_limit = "256"]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use warp::Filter;

/// The environment variable that makes this executable a server: `sgt` or `bare`, with the
/// working directory as its second word.
const SERVER_ROLE: &str = "SGT_BENCH_SERVER";
const DISTRIBUTED_READ: &str = "/api/v1/osquery/distributed/read";

fn main() -> anyhow::Result<()> {
    if let Ok(role) = std::env::var(SERVER_ROLE) {
        let (kind, dir) = role
            .split_once(' ')
            .context("SGT_BENCH_SERVER is `KIND DIR`")?;
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return match kind {
            "sgt" => runtime.block_on(run_sgt(Path::new(dir))),
            "bare" => runtime.block_on(run_bare(Path::new(dir))),
            other => bail!("unknown server kind {other}"),
        };
    }
    let options = Options::parse()?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure_all(&options))
}

#[derive(Debug)]
struct Options {
    connections: usize,
    requests: usize,
    rounds: usize,
    /// How long connections idle before the resident set is read: past the second after
    /// which sgt releases a quiet connection's HTTP state.
    settle: Duration,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let benchmarking = args.iter().any(|a| a == "--bench");
        let mut options = if benchmarking {
            Options {
                connections: 8_000,
                requests: 100_000,
                rounds: 1,
                settle: Duration::from_secs(3),
            }
        } else {
            Options {
                connections: 20,
                requests: 200,
                rounds: 1,
                settle: Duration::from_millis(1500),
            }
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<usize> {
                args.next()
                    .with_context(|| format!("{name} needs a number"))?
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{name} needs a number"))
            };
            match arg.as_str() {
                "--connections" => options.connections = value("--connections")?,
                "--requests" => options.requests = value("--requests")?,
                "--rounds" => options.rounds = value("--rounds")?.max(1),
                // What cargo and criterion-style runners pass: not ours.
                _ => {}
            }
        }
        Ok(options)
    }
}

/// One server's figures.
#[derive(Debug)]
struct Measured {
    kind: &'static str,
    rss_before_kib: u64,
    rss_after_kib: u64,
    kib_per_connection: f64,
    cpu_ms_per_1000_reads: f64,
    reads_per_second: f64,
}

async fn measure_all(options: &Options) -> anyhow::Result<()> {
    println!(
        "connections: {} idle after one read each; CPU over {} kept-alive reads",
        options.connections, options.requests
    );
    let mut results = Vec::new();
    for _ in 0..options.rounds {
        for kind in ["bare", "sgt"] {
            let measured = measure(kind, options).await?;
            println!(
                "{:>5}: RSS {} -> {} KiB, {:.1} KiB per idle connection; {:.1} ms CPU per 1,000 reads ({:.0} reads/s)",
                measured.kind,
                measured.rss_before_kib,
                measured.rss_after_kib,
                measured.kib_per_connection,
                measured.cpu_ms_per_1000_reads,
                measured.reads_per_second
            );
            results.push(measured);
        }
    }
    let mean = |kind: &str, f: fn(&Measured) -> f64| {
        let of: Vec<f64> = results.iter().filter(|m| m.kind == kind).map(f).collect();
        of.iter().sum::<f64>() / of.len() as f64
    };
    let memory = mean("sgt", |m| m.kib_per_connection) / mean("bare", |m| m.kib_per_connection);
    let cpu = mean("sgt", |m| m.cpu_ms_per_1000_reads) / mean("bare", |m| m.cpu_ms_per_1000_reads);
    println!("sgt / bare: memory per idle connection {memory:.2}x, CPU per read {cpu:.2}x");
    Ok(())
}

/// Starts a server of `kind`, opens the connections, reads once on each, lets them idle,
/// reads the server's resident set, then sends the CPU reads; stops the server.
async fn measure(kind: &'static str, options: &Options) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(kind, dir.path())?;
    let client = Client::new(&server)?;
    let node_key = match kind {
        "sgt" => client.enroll(&server).await?,
        _ => "bare".to_owned(),
    };
    let read_body = Bytes::from(format!(r#"{{"node_key":"{node_key}"}}"#));

    // A first set of connections warms the server (thread caches, pools, the node cache)
    // so the measured growth is what further connections cost.
    let warm = client.open_and_read(64, &read_body).await?;
    tokio::time::sleep(options.settle).await;
    let rss_before_kib = server.rss_kib()?;
    let mut idle = client
        .open_and_read(options.connections, &read_body)
        .await?;
    tokio::time::sleep(options.settle).await;
    let rss_after_kib = server.rss_kib()?;
    let kib_per_connection =
        (rss_after_kib as f64 - rss_before_kib as f64) / options.connections as f64;

    // The CPU figure: reads on the warm connections, 64 at a time, as many agents' polls.
    let cpu_before = server.cpu_ms()?;
    let started = Instant::now();
    let per_connection = options.requests.div_ceil(warm.len());
    let mut tasks = tokio::task::JoinSet::new();
    for mut sender in warm {
        let body = read_body.clone();
        tasks.spawn(async move {
            for _ in 0..per_connection {
                read(&mut sender, &body).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let reads = per_connection * 64;
    let cpu_ms = server.cpu_ms()? - cpu_before;
    idle.clear();
    drop(server);
    Ok(Measured {
        kind,
        rss_before_kib,
        rss_after_kib,
        kib_per_connection,
        cpu_ms_per_1000_reads: cpu_ms * 1000.0 / reads as f64,
        reads_per_second: reads as f64 / seconds,
    })
}

/// A server in a child process, killed when dropped.
struct Server {
    child: std::process::Child,
    address: SocketAddr,
    ca_pem: PathBuf,
    dir: PathBuf,
}

impl Server {
    fn start(kind: &str, dir: &Path) -> anyhow::Result<Server> {
        // `SGT_BENCH_WRAP="heaptrack"` or `"perf record -g -o FILE"` runs the servers under a
        // profiler (the figures printed are then the profiler's process's, not the server's).
        let wrap = std::env::var("SGT_BENCH_WRAP").unwrap_or_default();
        let mut command = match wrap.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, args)) => {
                let mut command = std::process::Command::new(program);
                command.args(args).arg(std::env::current_exe()?);
                command
            }
            None => std::process::Command::new(std::env::current_exe()?),
        };
        let mut child = command
            .env(SERVER_ROLE, format!("{kind} {}", dir.display()))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .context("the server ended before it listened")??;
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        let address = url
            .trim_start_matches("https://")
            .replace("localhost", "127.0.0.1")
            .parse()
            .with_context(|| format!("the server's address in {url}"))?;
        let ca_pem = match kind {
            "sgt" => dir.join("sgt-data/tls/ca.pem"),
            _ => dir.join("ca.pem"),
        };
        Ok(Server {
            child,
            address,
            ca_pem,
            dir: dir.to_owned(),
        })
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS in /proc/PID/status")
    }

    fn cpu_ms(&self) -> anyhow::Result<f64> {
        Ok(sgt_bin::loadtest::process_cpu_ms(
            &self.child.id().to_string(),
        )?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens kept-alive TLS connections to one server, as an agent's loop thread does.
struct Client {
    address: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    fn new(server: &Server) -> anyhow::Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&server.ca_pem)? {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Client {
            address: server.address,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(self.address).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Opens `count` connections, 64 at a time, and makes one read on each.
    async fn open_and_read(
        &self,
        count: usize,
        body: &Bytes,
    ) -> anyhow::Result<Vec<SendRequest<Full<Bytes>>>> {
        let mut opened = Vec::with_capacity(count);
        let mut tasks = tokio::task::JoinSet::new();
        let mut started = 0;
        while opened.len() < count {
            while started < count && tasks.len() < 64 {
                let (address, tls, body) = (self.address, self.tls.clone(), body.clone());
                tasks.spawn(async move {
                    let client = Client { address, tls };
                    let mut sender = client.connect().await?;
                    read(&mut sender, &body).await?;
                    anyhow::Ok(sender)
                });
                started += 1;
            }
            let sender = tasks.join_next().await.context("a connection task")???;
            opened.push(sender);
        }
        Ok(opened)
    }

    /// Enrolls one host with the server's default enroll secret; returns its node key.
    async fn enroll(&self, server: &Server) -> anyhow::Result<String> {
        let secret = std::fs::read_to_string(server.dir.join("sgt-data/enroll_secret"))?;
        let body = serde_json::json!({
            "enroll_secret": secret.trim(),
            "host_identifier": "bench-host",
            "platform_type": "9",
            "host_details": {"system_info": {"uuid": "bench-host"}},
        });
        let mut sender = self.connect().await?;
        let answer = post(
            &mut sender,
            "/api/v1/osquery/enroll",
            body.to_string().into(),
        )
        .await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        answer["node_key"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("enroll answered {answer}"))
    }
}

/// One distributed read; fails unless the server answers with the empty query set.
async fn read(sender: &mut SendRequest<Full<Bytes>>, body: &Bytes) -> anyhow::Result<()> {
    let answer = post(sender, DISTRIBUTED_READ, body.clone()).await?;
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    if answer["queries"] != serde_json::json!({}) {
        bail!("the read was answered {answer}");
    }
    Ok(())
}

async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Bytes> {
    sender.ready().await?;
    let request = http::Request::post(path)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let answer = sender.send_request(request).await?;
    if answer.status() != http::StatusCode::OK {
        bail!("{path} answered {}", answer.status());
    }
    Ok(answer.into_body().collect().await?.to_bytes())
}

/// `sgt serve` as its defaults make it, in this process.
async fn run_sgt(dir: &Path) -> anyhow::Result<()> {
    let settings = sgt_bin::settings::Settings::resolve(&sgt_bin::settings::Overrides {
        data_dir: Some(dir.join("sgt-data")),
        listen: Some("127.0.0.1:0".to_owned()),
        ..Default::default()
    })?;
    let server = sgt_bin::serve::start(&settings).await?;
    println!("listening on {}", server.url());
    std::future::pending::<()>().await;
    Ok(())
}

/// The bare server: one warp route on hyper-util's auto (HTTP/1.1 and h2) connection
/// builder, behind tokio-rustls with TLS 1.2 and 1.3 and ALPN h2 and http/1.1, as sgt's.
async fn run_bare(dir: &Path) -> anyhow::Result<()> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    std::fs::write(dir.join("ca.pem"), certified.cert.pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let routes = warp::post()
        .and(warp::path!(
            "api" / "v1" / "osquery" / "distributed" / "read"
        ))
        .and(warp::body::bytes())
        .map(|_body: Bytes| warp::reply::json(&serde_json::json!({"queries": {}})));
    let service = warp::service(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "listening on https://localhost:{}",
        listener.local_addr()?.port()
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, service) = (acceptor.clone(), service);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(
                    TokioIo::new(tls),
                    hyper_util::service::TowerToHyperService::new(service),
                )
                .await;
        });
    }
}
