//! Settings: defaults, then a TOML file, then `SGT_*` environment variables, then flags.
//!
//! Flags and environment variables are merged by clap (a flag wins over its variable); this
//! module lays them over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The address `sgt serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// The data directory used by default.
pub const DEFAULT_DATA_DIR: &str = "sgt-data";

/// The default last-seen resolution on DynamoDB: at 10,000 agents, 33 node writes a second
/// instead of 333.
pub const DYNAMODB_LAST_SEEN_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSetting {
    /// A SQLite file (`sqlite://PATH`).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// DynamoDB tables named `<prefix>-<table>` (`dynamodb://PREFIX`), created by
    /// `sgt provision`. Values too large for an item go to the blobs backend.
    Dynamodb {
        /// The table name prefix.
        prefix: String,
    },
}

/// Where enroll secrets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsSetting {
    /// A JSON file (`file://PATH`).
    File {
        /// The secrets file.
        path: PathBuf,
    },
    /// SSM Parameter Store under a path prefix (`ssm:///sgt/prod`), refreshed on a timer.
    Ssm {
        /// The parameter path prefix.
        prefix: String,
        /// How often every instance re-reads the secrets.
        refresh: std::time::Duration,
    },
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSinkSetting {
    /// JSON Lines files in a directory (`file://DIR`).
    File {
        /// The directory.
        dir: PathBuf,
        /// Rotation size in bytes.
        rotate_bytes: u64,
    },
    /// A Kinesis Data Firehose delivery stream (`firehose://STREAM`, or
    /// `firehose://STREAM?records=line` for one line per record, as OpenSearch needs).
    Firehose {
        /// The delivery stream's name.
        stream: String,
        /// One line per record instead of lines packed into records.
        line_per_record: bool,
    },
    /// The process's standard output, one record per line (`stdout://`); the server's own
    /// messages then go to standard error.
    Stdout,
}

/// One destination of log records and the kinds of record it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRoute {
    /// The destination.
    pub sink: LogSinkSetting,
    /// The kinds it takes (`result`, `status`).
    pub kinds: Vec<sgt_core::log_sink::LogType>,
}

/// Where carve blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobsSetting {
    /// Files in a directory (`file://DIR`).
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// An S3 bucket, keys under a prefix (`s3://BUCKET/PREFIX`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

/// Where AWS is, for the AWS backends (`[aws]` in the file); unset values come from the
/// standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, the credentials chain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSetting {
    /// An explicit endpoint, e.g. an emulator's.
    pub endpoint_url: Option<String>,
    /// The region.
    pub region: Option<String>,
}

/// The server's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// A certificate generated on first start under `<data dir>/tls/`.
    Generated,
    /// Operator-provided PEM files: the chain (leaf first) and its key.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// PEM text given in the environment (`SGT_TLS_CERT_PEM`, `SGT_TLS_KEY_PEM`), e.g.
    /// injected by ECS from SSM Parameter Store.
    Pem {
        /// Certificate chain, leaf first.
        cert: String,
        /// Private key.
        key: PrivateKeyPem,
    },
    /// No TLS: plain HTTP behind a TLS-terminating load balancer.
    Off,
}

/// A PEM private key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(pub String);

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem(redacted)")
    }
}

/// Client certificates asked of agents: mutual TLS (file keys `tls_client_ca`, a PEM file of
/// CA certificates, and `tls_client_auth`, `"require"` (the default once a CA is given) or
/// `"allow"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthSetting {
    /// Not asked for.
    Off,
    /// Optional; a certificate presented must chain to `ca`.
    Allow {
        /// PEM file of CA certificates.
        ca: PathBuf,
    },
    /// Agent endpoints refuse connections without a certificate chaining to `ca`.
    Require {
        /// PEM file of CA certificates.
        ca: PathBuf,
    },
}

/// Everything `sgt serve` needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where local state lives.
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// TLS material.
    pub tls: TlsSetting,
    /// Client certificates asked of agents.
    pub client_auth: ClientAuthSetting,
    /// The store backend.
    pub storage: StorageSetting,
    /// The enroll-secret backend.
    pub secrets: SecretsSetting,
    /// Where log records go: every route that takes a record's kind gets it, and an agent's
    /// batch is acknowledged once all of them stored it. At least one.
    pub log_routes: Vec<LogRoute>,
    /// The blob backend.
    pub blobs: BlobsSetting,
    /// AWS endpoint and region, for the AWS backends.
    pub aws: AwsSetting,
    /// Connection and request limits (file keys `max_connections`,
    /// `max_requests_in_flight`, `request_timeout_seconds`, `idle_timeout_seconds`,
    /// `max_body_memory_mib`; defaults
    /// otherwise).
    pub limits: crate::server::transport::listener::ConnectionLimits,
    /// Whether the file set `max_connections`; when not, `sgt serve` holds as many
    /// connections as its open-files limit allows.
    pub max_connections_chosen: bool,
    /// The services' limits: networks that may read `/metrics` (file key `metrics_allow`,
    /// `--metrics-allow`; empty: every caller); enrolls per source address (file keys
    /// `enroll_burst_per_address`, `enroll_per_minute_per_address`) and per host identity
    /// (`enroll_burst_per_host`, `enroll_per_minute_per_host`; 0 a minute turns a limit
    /// off); how often at most each node's `last_seen` is written
    /// (`last_seen_resolution_seconds`): by default 30 s on SQLite, where a write costs
    /// nothing, and 300 s on DynamoDB, where each is a paid write of the node's item; how
    /// long after it was last seen a node counts as online (`online_window_seconds`;
    /// default: from each environment's `distributed_interval`); how often each node is asked
    /// its detail queries (`detail_interval_seconds`, default an hour, 0: never) and its
    /// dynamic labels' queries (`label_interval_seconds`, default 10 minutes, 0: never).
    pub service_limits: crate::server::ServiceLimits,
}

impl Settings {
    /// True when a log route writes to standard output, which the server's own messages
    /// must then leave alone.
    pub fn logs_to_stdout(&self) -> bool {
        self.log_routes
            .iter()
            .any(|r| r.sink == LogSinkSetting::Stdout)
    }

    /// True when any backend is an AWS one.
    pub fn uses_aws(&self) -> bool {
        matches!(self.storage, StorageSetting::Dynamodb { .. })
            || matches!(self.secrets, SecretsSetting::Ssm { .. })
            || self
                .log_routes
                .iter()
                .any(|r| matches!(r.sink, LogSinkSetting::Firehose { .. }))
            || matches!(self.blobs, BlobsSetting::S3 { .. })
    }
}

/// Values from flags or environment variables; `None` where neither was given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config` / `SGT_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir` / `SGT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--listen` / `SGT_LISTEN`.
    pub listen: Option<String>,
    /// `--tls-cert` / `SGT_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `SGT_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `SGT_TLS_CERT_PEM` and `SGT_TLS_KEY_PEM`: the certificate chain and key themselves.
    pub tls_pem: Option<(String, PrivateKeyPem)>,
    /// `--insecure-http` / `SGT_INSECURE_HTTP`.
    pub insecure_http: bool,
    /// `--storage` / `SGT_STORAGE`, a backend URL such as `dynamodb://prod`.
    pub storage: Option<String>,
    /// `--secrets` / `SGT_SECRETS`, e.g. `ssm:///sgt/prod`.
    pub secrets: Option<String>,
    /// `--log-sink` / `SGT_LOG_SINK`, e.g. `firehose://sgt-prod-logs`.
    pub log_sink: Option<String>,
    /// `--blobs` / `SGT_BLOBS`, e.g. `s3://bucket/carves`.
    pub blobs: Option<String>,
    /// `--metrics-allow` / `SGT_METRICS_ALLOW`: networks (CIDR or address) that may read
    /// `/metrics`; when given, they replace the file's `metrics_allow`.
    pub metrics_allow: Vec<String>,
}

/// The TOML file's shape. Every key is optional; backends take a URL shorthand or a table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_client_auth: Option<String>,
    insecure_http: Option<bool>,
    storage: Option<BackendSpec>,
    secrets: Option<BackendSpec>,
    log_sink: Option<toml::Value>,
    blobs: Option<BackendSpec>,
    metrics_allow: Option<Vec<String>>,
    aws: Option<AwsSetting>,
    max_connections: Option<usize>,
    max_requests_in_flight: Option<usize>,
    request_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_body_memory_mib: Option<u64>,
    enroll_burst_per_address: Option<u32>,
    enroll_per_minute_per_address: Option<u32>,
    enroll_burst_per_host: Option<u32>,
    enroll_per_minute_per_host: Option<u32>,
    last_seen_resolution_seconds: Option<u64>,
    online_window_seconds: Option<u64>,
    detail_interval_seconds: Option<u64>,
    label_interval_seconds: Option<u64>,
}

/// `log_sink`: one backend as for the other concerns, or routes (`[[log_sink]]` tables).
#[derive(Debug)]
enum LogSinkSpec {
    One(BackendSpec),
    Routes(Vec<RouteTable>),
}

impl LogSinkSpec {
    /// Reads the file's `log_sink` value, naming what is wrong in it.
    fn read(value: &toml::Value) -> anyhow::Result<Self> {
        Ok(match value {
            toml::Value::Array(routes) => LogSinkSpec::Routes(
                routes
                    .iter()
                    .enumerate()
                    .map(|(i, route)| {
                        route
                            .clone()
                            .try_into()
                            .with_context(|| format!("log_sink route {}", i + 1))
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
            other => LogSinkSpec::One(other.clone().try_into().context("log_sink")?),
        })
    }
}

/// One `[[log_sink]]` route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    url: String,
    kinds: Option<Vec<String>>,
    required: Option<bool>,
    rotate_bytes: Option<u64>,
}

/// `storage = "sqlite://sgt-data/sgt.db"` or `[storage] type = "sqlite", path = "…"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BackendSpec {
    Url(String),
    Table(BackendTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendTable {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    rotate_bytes: Option<u64>,
    refresh_seconds: Option<u64>,
}

impl BackendSpec {
    /// (scheme, path, rotate_bytes, refresh_seconds)
    fn parts(&self, what: &str) -> anyhow::Result<BackendParts> {
        match self {
            BackendSpec::Url(url) => {
                let (scheme, rest) = url
                    .split_once("://")
                    .with_context(|| format!("{what}: {url:?} is not SCHEME://PATH"))?;
                let path = (!rest.is_empty()).then(|| PathBuf::from(rest));
                Ok((scheme.to_owned(), path, None, None))
            }
            BackendSpec::Table(t) => Ok((
                t.kind.clone(),
                t.path.clone(),
                t.rotate_bytes,
                t.refresh_seconds,
            )),
        }
    }
}

type BackendParts = (String, Option<PathBuf>, Option<u64>, Option<u64>);

/// The kinds a route takes when it names none.
const DEFAULT_ROUTE_KINDS: [sgt_core::log_sink::LogType; 2] = [
    sgt_core::log_sink::LogType::Result,
    sgt_core::log_sink::LogType::Status,
];

/// The log sink a backend spec names.
fn log_sink_setting(parts: BackendParts, data_dir: &Path) -> anyhow::Result<LogSinkSetting> {
    let (kind, path, rotate, _) = parts;
    let default_rotate = 256 * 1024 * 1024;
    Ok(match kind.as_str() {
        "file" => LogSinkSetting::File {
            dir: path.unwrap_or_else(|| data_dir.join("logs")),
            rotate_bytes: rotate.unwrap_or(default_rotate),
        },
        "firehose" => {
            let name = aws_name("log_sink", path)?;
            let (stream, query) = name.split_once('?').unwrap_or((&name, ""));
            let line_per_record = match query {
                "" | "records=packed" => false,
                "records=line" => true,
                other => bail!(
                    "log_sink: unknown option {other:?} (known: records=line, records=packed)"
                ),
            };
            LogSinkSetting::Firehose {
                stream: stream.trim_matches('/').to_owned(),
                line_per_record,
            }
        }
        "stdout" if path.is_none() => LogSinkSetting::Stdout,
        "stdout" => bail!("log_sink: stdout:// takes no path"),
        _ => bail!("log_sink: unknown backend {kind:?} (known: file, firehose, stdout)"),
    })
}

/// The routes of `[[log_sink]]` tables: each a destination and the kinds it takes.
fn log_routes(routes: &[RouteTable], data_dir: &Path) -> anyhow::Result<Vec<LogRoute>> {
    use sgt_core::log_sink::LogType;
    if routes.is_empty() {
        bail!("log_sink: give at least one [[log_sink]] route");
    }
    let mut resolved = Vec::with_capacity(routes.len());
    for (i, route) in routes.iter().enumerate() {
        let what = format!("log_sink route {} ({})", i + 1, route.url);
        if route.required == Some(false) {
            bail!("{what}: required = false is not supported yet: every route is required (a batch is acknowledged once every route stored it)");
        }
        let mut parts = BackendSpec::Url(route.url.clone()).parts("log_sink")?;
        parts.2 = route.rotate_bytes;
        let sink = log_sink_setting(parts, data_dir).with_context(|| what.clone())?;
        let kinds = match &route.kinds {
            None => DEFAULT_ROUTE_KINDS.to_vec(),
            Some(kinds) if kinds.is_empty() => bail!("{what}: kinds is empty"),
            Some(names) => {
                let mut kinds = Vec::new();
                for name in names {
                    let kind = match name.as_str() {
                        "result" => LogType::Result,
                        "status" => LogType::Status,
                        other => {
                            bail!("{what}: unknown record kind {other:?} (known: result, status)")
                        }
                    };
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                kinds
            }
        };
        if resolved.iter().any(|r: &LogRoute| r.sink == sink) {
            bail!("{what}: the same destination is named twice");
        }
        resolved.push(LogRoute { sink, kinds });
    }
    Ok(resolved)
}

/// A DynamoDB table prefix: tables are `<prefix>-<table>`, and table names allow only
/// letters, digits, `_`, `-` and `.`.
fn dynamodb_prefix(name: &str) -> anyhow::Result<String> {
    let prefix = name.trim_matches('/');
    let valid = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        bail!("storage: dynamodb://PREFIX takes letters, digits, '_', '-' and '.' only, got {prefix:?}");
    }
    Ok(prefix.to_owned())
}

/// The text of a path setting that names an AWS resource.
fn aws_name(what: &str, path: Option<PathBuf>) -> anyhow::Result<String> {
    let name = path
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.trim_matches('/').is_empty() {
        bail!("{what}: give the AWS resource, e.g. firehose://STREAM, s3://BUCKET/PREFIX, ssm:///PREFIX");
    }
    Ok(name)
}

impl Settings {
    /// Resolves the settings: defaults, the TOML file (if any), then `overrides`.
    ///
    /// # Errors
    /// A clear message for an unreadable or invalid file, an unknown backend, a bad address,
    /// or a certificate without its key.
    pub fn resolve(overrides: &Overrides) -> anyhow::Result<Settings> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen_text = overrides
            .listen
            .clone()
            .or(file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("listen address {listen_text:?} is not IP:PORT"))?;
        let (tls, client_auth) = resolve_tls(overrides, &file)?;
        let backends = resolve_backends(overrides, &file, &data_dir)?;
        let service_limits = resolve_service_limits(overrides, &file, &backends.storage)?;
        Ok(Settings {
            data_dir,
            listen,
            tls,
            client_auth,
            storage: backends.storage,
            secrets: backends.secrets,
            log_routes: backends.log_routes,
            blobs: backends.blobs,
            aws: file.aws.clone().unwrap_or_default(),
            limits: resolve_connection_limits(&file)?,
            max_connections_chosen: file.max_connections.is_some(),
            service_limits,
        })
    }

    /// The file holding the first admin user's password (mode 0600).
    pub fn admin_password_file(&self) -> PathBuf {
        self.data_dir.join("admin_password")
    }

    /// The file osquery reads its enroll secret from (`--enroll_secret_path`).
    pub fn enroll_secret_file(&self) -> PathBuf {
        self.data_dir.join("enroll_secret")
    }
}

/// The four backend settings, each from a flag or variable, else the file, else the
/// embedded default under the data directory.
struct BackendSettings {
    storage: StorageSetting,
    secrets: SecretsSetting,
    log_routes: Vec<LogRoute>,
    blobs: BlobsSetting,
}

/// TLS and client-certificate settings: generated, files or PEM from the environment, or off
/// behind a TLS-terminating balancer; combinations that cannot work are refused.
fn resolve_tls(
    overrides: &Overrides,
    file: &FileSettings,
) -> anyhow::Result<(TlsSetting, ClientAuthSetting)> {
    let insecure_http = overrides.insecure_http || file.insecure_http.unwrap_or(false);
    let cert = overrides.tls_cert.clone().or(file.tls_cert.clone());
    let key = overrides.tls_key.clone().or(file.tls_key.clone());
    let tls = match (insecure_http, cert, key) {
        (_, Some(_), _) | (_, _, Some(_)) if overrides.tls_pem.is_some() => {
            bail!("SGT_TLS_CERT_PEM/SGT_TLS_KEY_PEM cannot be combined with --tls-cert/--tls-key")
        }
        (true, None, None) if overrides.tls_pem.is_some() => {
            bail!("--insecure-http cannot be combined with SGT_TLS_CERT_PEM/SGT_TLS_KEY_PEM")
        }
        (false, None, None) if overrides.tls_pem.is_some() => {
            let (cert, key) = overrides.tls_pem.clone().expect("checked above");
            TlsSetting::Pem { cert, key }
        }
        (true, None, None) => TlsSetting::Off,
        (true, _, _) => bail!("--insecure-http cannot be combined with --tls-cert/--tls-key"),
        (false, None, None) => TlsSetting::Generated,
        (false, Some(cert), Some(key)) => TlsSetting::Files { cert, key },
        (false, _, _) => bail!("--tls-cert and --tls-key must be given together"),
    };
    let client_auth = match (file.tls_client_ca.clone(), file.tls_client_auth.as_deref()) {
        (None, None) => ClientAuthSetting::Off,
        (None, Some(_)) => bail!("tls_client_auth needs tls_client_ca, the CA certificates (PEM) client certificates must chain to"),
        (Some(ca), None | Some("require")) => ClientAuthSetting::Require { ca },
        (Some(ca), Some("allow")) => ClientAuthSetting::Allow { ca },
        (Some(_), Some(other)) => {
            bail!("tls_client_auth must be \"require\" or \"allow\", got {other:?}")
        }
    };
    if tls == TlsSetting::Off && client_auth != ClientAuthSetting::Off {
        bail!("tls_client_ca needs TLS on this server; behind a TLS-terminating balancer, verify client certificates at the balancer");
    }

    Ok((tls, client_auth))
}

/// Which backend holds each concern; a backend given as a flag or variable replaces the
/// file's.
fn resolve_backends(
    overrides: &Overrides,
    file: &FileSettings,
    data_dir: &Path,
) -> anyhow::Result<BackendSettings> {
    let chosen = |flag: &Option<String>, file: &Option<BackendSpec>, what: &str| match flag {
        Some(url) => BackendSpec::Url(url.clone()).parts(what).map(Some),
        None => file.as_ref().map(|s| s.parts(what)).transpose(),
    };
    let storage = match chosen(&overrides.storage, &file.storage, "storage")? {
        None => StorageSetting::Sqlite {
            path: data_dir.join("sgt.db"),
        },
        Some((kind, path, _, _)) => match kind.as_str() {
            "sqlite" => StorageSetting::Sqlite {
                path: path.unwrap_or_else(|| data_dir.join("sgt.db")),
            },
            "dynamodb" => StorageSetting::Dynamodb {
                prefix: dynamodb_prefix(&aws_name("storage", path)?)?,
            },
            _ => bail!("storage: unknown backend {kind:?} (known: sqlite, dynamodb)"),
        },
    };
    let secrets = match chosen(&overrides.secrets, &file.secrets, "secrets")? {
        None => SecretsSetting::File {
            path: data_dir.join("enroll_secrets.json"),
        },
        Some((kind, path, _, refresh)) => match kind.as_str() {
            "file" => SecretsSetting::File {
                path: path.unwrap_or_else(|| data_dir.join("enroll_secrets.json")),
            },
            "ssm" => SecretsSetting::Ssm {
                prefix: aws_name("secrets", path)?,
                refresh: std::time::Duration::from_secs(refresh.unwrap_or(30).max(1)),
            },
            _ => bail!("secrets: unknown backend {kind:?} (known: file, ssm)"),
        },
    };
    let file_log_sink = file.log_sink.as_ref().map(LogSinkSpec::read).transpose()?;
    let log_routes = match (&overrides.log_sink, &file_log_sink) {
        (Some(url), _) => vec![LogRoute {
            sink: log_sink_setting(BackendSpec::Url(url.clone()).parts("log_sink")?, data_dir)?,
            kinds: DEFAULT_ROUTE_KINDS.to_vec(),
        }],
        (None, None) => vec![LogRoute {
            sink: log_sink_setting(("file".to_owned(), None, None, None), data_dir)?,
            kinds: DEFAULT_ROUTE_KINDS.to_vec(),
        }],
        (None, Some(LogSinkSpec::One(spec))) => vec![LogRoute {
            sink: log_sink_setting(spec.parts("log_sink")?, data_dir)?,
            kinds: DEFAULT_ROUTE_KINDS.to_vec(),
        }],
        (None, Some(LogSinkSpec::Routes(routes))) => log_routes(routes, data_dir)?,
    };
    let blobs = match chosen(&overrides.blobs, &file.blobs, "blobs")? {
        None => BlobsSetting::Dir {
            path: data_dir.join("blobs"),
        },
        Some((kind, path, _, _)) => match kind.as_str() {
            "file" | "dir" => BlobsSetting::Dir {
                path: path.unwrap_or_else(|| data_dir.join("blobs")),
            },
            "s3" => {
                let name = aws_name("blobs", path)?;
                let (bucket, prefix) = name
                    .trim_matches('/')
                    .split_once('/')
                    .unwrap_or((name.trim_matches('/'), ""));
                BlobsSetting::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                }
            }
            _ => bail!("blobs: unknown backend {kind:?} (known: file, s3)"),
        },
    };
    Ok(BackendSettings {
        storage,
        secrets,
        log_routes,
        blobs,
    })
}

/// The transport's limits from the file's keys, each checked for a usable range.
fn resolve_connection_limits(
    file: &FileSettings,
) -> anyhow::Result<crate::server::transport::listener::ConnectionLimits> {
    let mut limits = crate::server::transport::listener::ConnectionLimits::default();
    if let Some(max) = file.max_connections {
        if max == 0 {
            bail!("max_connections must be at least 1");
        }
        limits.max_connections = max;
    }
    if let Some(max) = file.max_requests_in_flight {
        if max == 0 {
            bail!("max_requests_in_flight must be at least 1");
        }
        limits.max_requests_in_flight = max;
    }
    if let Some(seconds) = file.request_timeout_seconds {
        if !(1..=3600).contains(&seconds) {
            bail!("request_timeout_seconds must be 1 to 3600");
        }
        limits.request_timeout = std::time::Duration::from_secs(seconds);
    }
    if let Some(seconds) = file.idle_timeout_seconds {
        if !(1..=3600).contains(&seconds) {
            bail!("idle_timeout_seconds must be 1 to 3600");
        }
        limits.idle_timeout = std::time::Duration::from_secs(seconds);
    }
    if let Some(mib) = file.max_body_memory_mib {
        // The largest body, its inflation and its parsed copy must fit, or such a
        // request never could.
        let least = 3 * crate::server::transport::LARGEST_BODY_BYTES / (1024 * 1024);
        if mib < least {
            bail!("max_body_memory_mib must be at least {least} (the largest request body, 64 MiB, sent, inflated and parsed)");
        }
        limits.max_body_memory = mib.saturating_mul(1024 * 1024);
    }
    Ok(limits)
}

/// The services' limits: enroll rate limits, last-seen resolution (coarser on DynamoDB, where
/// each write is paid), and who may read `/metrics`.
fn resolve_service_limits(
    overrides: &Overrides,
    file: &FileSettings,
    storage: &StorageSetting,
) -> anyhow::Result<crate::server::ServiceLimits> {
    let default_enroll = crate::server::services::agent::DEFAULT_ENROLL_LIMIT;
    let enroll_limit = crate::server::services::rate_limit::RateLimit {
        burst: file
            .enroll_burst_per_address
            .unwrap_or(default_enroll.burst),
        per_minute: file
            .enroll_per_minute_per_address
            .unwrap_or(default_enroll.per_minute),
    };
    let default_host = crate::server::services::agent::DEFAULT_HOST_ENROLL_LIMIT;
    let host_enroll_limit = crate::server::services::rate_limit::RateLimit {
        burst: file.enroll_burst_per_host.unwrap_or(default_host.burst),
        per_minute: file
            .enroll_per_minute_per_host
            .unwrap_or(default_host.per_minute),
    };
    let last_seen_resolution = match file.last_seen_resolution_seconds {
        Some(seconds) if !(1..=86_400).contains(&seconds) => {
            bail!("last_seen_resolution_seconds must be 1 to 86400")
        }
        Some(seconds) => std::time::Duration::from_secs(seconds),
        None if matches!(storage, StorageSetting::Dynamodb { .. }) => DYNAMODB_LAST_SEEN_RESOLUTION,
        None => crate::server::services::agent::DEFAULT_LAST_SEEN_RESOLUTION,
    };
    let online_window = match file.online_window_seconds {
        Some(seconds) if !(1..=30 * 86_400).contains(&seconds) => {
            bail!("online_window_seconds must be 1 to 2592000")
        }
        seconds => seconds.map(std::time::Duration::from_secs),
    };
    let detail_interval = match file.detail_interval_seconds {
        Some(0) => None,
        Some(seconds) if seconds > 30 * 86_400 => {
            bail!("detail_interval_seconds must be 0 (never) to 2592000")
        }
        Some(seconds) => Some(std::time::Duration::from_secs(seconds)),
        None => Some(crate::server::services::agent::DEFAULT_DETAIL_INTERVAL),
    };
    let label_interval = match file.label_interval_seconds {
        Some(0) => None,
        Some(seconds) if seconds > 30 * 86_400 => {
            bail!("label_interval_seconds must be 0 (never) to 2592000")
        }
        Some(seconds) => Some(std::time::Duration::from_secs(seconds)),
        None => Some(crate::server::services::agent::DEFAULT_LABEL_INTERVAL),
    };
    let metrics_allow = if overrides.metrics_allow.is_empty() {
        file.metrics_allow.clone().unwrap_or_default()
    } else {
        overrides.metrics_allow.clone()
    };
    let metrics_allow = metrics_allow
        .iter()
        .map(|text| parse_network(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(crate::server::ServiceLimits {
        enroll_limit,
        host_enroll_limit,
        last_seen_resolution,
        online_window,
        detail_interval,
        label_interval,
        metrics_allow,
    })
}

/// A network in CIDR form (`10.0.0.0/16`, `fd00::/8`) or a single address.
fn parse_network(text: &str) -> anyhow::Result<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("metrics_allow: {text:?} is not a network (CIDR) or address"))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_under_the_data_dir() {
        let s = Settings::resolve(&Overrides::default()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("sgt-data"));
        assert_eq!(s.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(s.tls, TlsSetting::Generated);
        assert_eq!(
            s.service_limits.last_seen_resolution,
            crate::server::services::agent::DEFAULT_LAST_SEEN_RESOLUTION
        );
        assert_eq!(
            s.storage,
            StorageSetting::Sqlite {
                path: PathBuf::from("sgt-data/sgt.db")
            }
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sgt.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from-file\"\nlisten = \"0.0.0.0:9000\"\nstorage = \"sqlite:///db/x.db\"\n[log_sink]\ntype = \"file\"\npath = \"/logs\"\nrotate_bytes = 1000\n",
        )
        .unwrap();
        let mut o = Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        };
        let s = Settings::resolve(&o).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from-file"));
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(
            s.storage,
            StorageSetting::Sqlite {
                path: PathBuf::from("/db/x.db")
            }
        );
        assert_eq!(
            s.log_routes[0].sink,
            LogSinkSetting::File {
                dir: PathBuf::from("/logs"),
                rotate_bytes: 1000
            }
        );
        o.listen = Some("127.0.0.1:1".into());
        o.data_dir = Some("/flag".into());
        let s = Settings::resolve(&o).unwrap();
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn log_routes_parse_with_their_kinds_and_mistakes_are_named() {
        use sgt_core::log_sink::LogType;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sgt.toml");
        let resolve = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            Settings::resolve(&Overrides {
                config_file: Some(path.clone()),
                data_dir: Some("/data".into()),
                ..Default::default()
            })
        };
        let s = resolve(
            "[[log_sink]]\nurl = \"file:///var/log/sgt\"\n\n[[log_sink]]\nurl = \"firehose://statuses\"\nkinds = [\"status\"]\n",
        )
        .unwrap();
        assert_eq!(s.log_routes.len(), 2);
        assert_eq!(
            s.log_routes[0],
            LogRoute {
                sink: LogSinkSetting::File {
                    dir: "/var/log/sgt".into(),
                    rotate_bytes: 256 * 1024 * 1024
                },
                kinds: vec![LogType::Result, LogType::Status],
            }
        );
        assert_eq!(s.log_routes[1].kinds, [LogType::Status]);
        assert!(s.uses_aws());
        let twice = resolve(
            "[[log_sink]]\nurl = \"file:///a\"\nkinds = [\"status\", \"result\", \"status\"]\n",
        )
        .unwrap();
        assert_eq!(
            twice.log_routes[0].kinds,
            [LogType::Status, LogType::Result]
        );
        assert!(!s.logs_to_stdout());
        let stdout = resolve("log_sink = \"stdout://\"\n").unwrap();
        assert_eq!(stdout.log_routes[0].sink, LogSinkSetting::Stdout);
        assert!(stdout.logs_to_stdout());
        let single = resolve("").unwrap();
        assert_eq!(single.log_routes.len(), 1);
        assert_eq!(
            single.log_routes[0].sink,
            LogSinkSetting::File {
                dir: "/data/logs".into(),
                rotate_bytes: 256 * 1024 * 1024
            }
        );
        for (toml, expected) in [
            ("log_sink = []\n", "at least one"),
            (
                "[[log_sink]]\nurl = \"file:///a\"\nkinds = [\"audit\"]\n",
                "unknown record kind",
            ),
            (
                "[[log_sink]]\nurl = \"file:///a\"\nkinds = []\n",
                "kinds is empty",
            ),
            (
                "[[log_sink]]\nurl = \"file:///a\"\nrequired = false\n",
                "not supported yet",
            ),
            ("[[log_sink]]\nurl = \"kafka://a\"\n", "unknown backend"),
            ("[[log_sink]]\nurl = \"stdout://x\"\n", "takes no path"),
            (
                "[[log_sink]]\nurl = \"file:///a\"\n[[log_sink]]\nurl = \"file:///a\"\n",
                "named twice",
            ),
            (
                "[[log_sink]]\nurl = \"file:///a\"\nformat = \"x\"\n",
                "unknown field",
            ),
        ] {
            let err = format!("{:#}", resolve(toml).unwrap_err());
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn aws_backends_parse_from_urls_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sgt.toml");
        std::fs::write(
            &path,
            "secrets = \"ssm:///sgt/prod\"\nlog_sink = \"firehose://sgt-prod-logs\"\nblobs = \"s3://sgt-carves/prod\"\n[aws]\nendpoint_url = \"http://127.0.0.1:5000\"\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        let s = Settings::resolve(&Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.secrets,
            SecretsSetting::Ssm {
                prefix: "/sgt/prod".into(),
                refresh: std::time::Duration::from_secs(30)
            }
        );
        assert_eq!(
            s.log_routes[0].sink,
            LogSinkSetting::Firehose {
                stream: "sgt-prod-logs".into(),
                line_per_record: false,
            }
        );
        let line_per_record = Settings::resolve(&Overrides {
            log_sink: Some("firehose://sgt-prod-logs?records=line".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            line_per_record.log_routes[0].sink,
            LogSinkSetting::Firehose {
                stream: "sgt-prod-logs".into(),
                line_per_record: true,
            }
        );
        let err = Settings::resolve(&Overrides {
            log_sink: Some("firehose://sgt-prod-logs?records=maybe".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("records=line"), "{err}");
        assert_eq!(
            s.blobs,
            BlobsSetting::S3 {
                bucket: "sgt-carves".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(s.aws.region.as_deref(), Some("eu-west-1"));
        assert!(s.uses_aws());
        std::fs::write(
            &path,
            "[secrets]\ntype = \"ssm\"\npath = \"/sgt/dev\"\nrefresh_seconds = 5\n",
        )
        .unwrap();
        let s = Settings::resolve(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.secrets,
            SecretsSetting::Ssm {
                prefix: "/sgt/dev".into(),
                refresh: std::time::Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn bad_settings_are_explained() {
        let bad_listen = Overrides {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad_listen)
            .unwrap_err()
            .to_string()
            .contains("IP:PORT"));
        let half_tls = Overrides {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&half_tls).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sgt.toml");
        std::fs::write(&path, "storage = \"dynamodb://prod\"\n").unwrap();
        let from_file = Settings::resolve(&Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_file.storage,
            StorageSetting::Dynamodb {
                prefix: "prod".into()
            }
        );
        assert!(from_file.uses_aws());
        assert_eq!(
            from_file.service_limits.last_seen_resolution,
            DYNAMODB_LAST_SEEN_RESOLUTION
        );
        // A flag or environment variable wins over the file.
        let from_flag = Settings::resolve(&Overrides {
            config_file: Some(path.clone()),
            storage: Some("sqlite:///tmp/x.db".into()),
            log_sink: Some("firehose://logs".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_flag.storage,
            StorageSetting::Sqlite {
                path: "/tmp/x.db".into()
            }
        );
        assert_eq!(
            from_flag.log_routes[0].sink,
            LogSinkSetting::Firehose {
                stream: "logs".into(),
                line_per_record: false,
            }
        );
        let err = Settings::resolve(&Overrides {
            storage: Some("dynamodb://bad prefix!".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("letters, digits"), "{err}");
        std::fs::write(&path, "log_sink = \"firehose://\"\n").unwrap();
        let err = Settings::resolve(&Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("firehose://STREAM"), "{err}");
        for (toml, expected) in [
            ("tls_client_auth = \"require\"\n", "needs tls_client_ca"),
            (
                "tls_client_ca = \"ca.pem\"\ntls_client_auth = \"maybe\"\n",
                "\"require\" or \"allow\"",
            ),
            (
                "tls_client_ca = \"ca.pem\"\ninsecure_http = true\n",
                "at the balancer",
            ),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = Settings::resolve(&Overrides {
                config_file: Some(path.clone()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(expected), "{toml}: {err}");
        }
        std::fs::write(&path, "tls_client_ca = \"ca.pem\"\n").unwrap();
        let required = Settings::resolve(&Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            required.client_auth,
            ClientAuthSetting::Require {
                ca: "ca.pem".into()
            }
        );
        std::fs::write(&path, "listen_on = \"x\"\n").unwrap();
        let err = Settings::resolve(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn the_body_memory_budget_must_hold_the_largest_body_and_its_inflation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sgt.toml");
        let resolve = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Settings::resolve(&Overrides {
                config_file: Some(path.clone()),
                ..Default::default()
            })
        };
        let err = resolve("max_body_memory_mib = 160\n").unwrap_err();
        assert!(err.to_string().contains("at least 192"), "{err}");
        let s = resolve("max_body_memory_mib = 512\n").unwrap();
        assert_eq!(s.limits.max_body_memory, 512 * 1024 * 1024);
        let s = resolve("").unwrap();
        assert_eq!(s.limits.max_body_memory, 256 * 1024 * 1024);
    }
}
