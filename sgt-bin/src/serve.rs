//! Starting and stopping the server: settings → TLS → backends → bootstrap → listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backends::build_backends;
use crate::bootstrap::{bootstrap, bootstrap_admin, create_private_dir};
use crate::server::services::agent::AgentService;
use crate::server::transport::listener::{
    tls_listener, ClientCertificates, ConnectionLimits, Listener,
};
use crate::server::App;
use crate::settings::{ClientAuthSetting, Settings, StorageSetting, TlsSetting};
use crate::tls_files::TlsFiles;

/// How often coalesced last-seen times are written to the store.
use crate::server::services::agent::LAST_SEEN_FLUSH_INTERVAL;
/// How often carves whose blocks have all arrived but whose assembly was cut short (a
/// restart, a failing blob store) are assembled, and abandoned ones expired; also at start.
const CARVE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often nodes past their environment's `node_expiry_days` are removed.
const NODE_EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// How often cached nodes are checked against keys revoked through other instances: the
/// longest a node deleted elsewhere keeps working here.
pub const CACHE_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// A running server.
#[derive(Debug)]
pub struct StartedServer {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// True when serving TLS.
    pub tls: bool,
    /// The CA certificate clients should trust, when the certificate was generated.
    pub ca_file: Option<PathBuf>,
    /// The service, for tests that look behind the API.
    pub service: Arc<AgentService>,
    /// The admin service, for tests that run its sweeps at a time of their choosing.
    pub admin: Arc<crate::server::services::admin::AdminService>,
    /// What was created on this start, one line each, for the operator.
    pub report: Vec<String>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    flusher: JoinHandle<()>,
}

impl StartedServer {
    /// The base URL, e.g. `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops accepting connections and writes pending last-seen times.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.flusher.await;
        if let Err(e) = self.service.flush_last_seen().await {
            tracing::warn!(error = %e, "last-seen flush at shutdown failed");
        }
    }
}

/// The connection limits, with `max_connections` sized to the open-files limit (raised to
/// the hard limit first, and at most
/// [`DEFAULT_MAX_CONNECTIONS_CEILING`](crate::open_files::DEFAULT_MAX_CONNECTIONS_CEILING))
/// unless the settings chose it; says what it can hold, and warns when
/// a chosen value is above what the limit allows.
fn fit_connections_to_open_files(
    settings: &Settings,
    report: &mut Vec<String>,
) -> anyhow::Result<ConnectionLimits> {
    let mut limits = settings.limits;
    let open_files = crate::open_files::raise_to_hard_limit()?;
    let fit = crate::open_files::server_connections_within(open_files);
    if !settings.max_connections_chosen {
        limits.max_connections = fit.min(crate::open_files::DEFAULT_MAX_CONNECTIONS_CEILING);
    }
    report.push(format!(
        "holds up to {} connections (open-files limit {open_files})",
        limits.max_connections
    ));
    if limits.max_connections > fit {
        let warning = format!(
            "warning: max_connections {} is above the {fit} connections the open-files limit {open_files} allows; past that, accepting fails until one closes (raise `ulimit -n`, or the container's nofile ulimit)",
            limits.max_connections
        );
        tracing::warn!("{warning}");
        report.push(warning);
    }
    Ok(limits)
}

/// Starts the server described by `settings`, creating on first start the data directory,
/// database, certificate, `default` environment and its enroll secret.
///
/// # Errors
/// When the data directory, certificate, a backend or the listen address cannot be set up.
pub async fn start(settings: &Settings) -> anyhow::Result<StartedServer> {
    let mut report = Vec::new();
    if !settings.data_dir.exists() {
        create_private_dir(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    let data_dir = std::path::absolute(&settings.data_dir)?;
    report.push(format!("data directory: {}", data_dir.display()));

    let client_certificates = match &settings.client_auth {
        ClientAuthSetting::Off => ClientCertificates::NotAsked,
        ClientAuthSetting::Allow { ca } => {
            report.push(format!(
                "client certificates allowed, from the CA in {}",
                ca.display()
            ));
            ClientCertificates::Allowed {
                ca_pem: read_pem(ca)?,
            }
        }
        ClientAuthSetting::Require { ca } => {
            report.push(format!(
                "client certificates required of agents, from the CA in {}",
                ca.display()
            ));
            ClientCertificates::Required {
                ca_pem: read_pem(ca)?,
            }
        }
    };
    let (listener_mode, ca_file) = match &settings.tls {
        TlsSetting::Generated => {
            let files = TlsFiles::under(&data_dir);
            if files.ensure()? {
                report.push(format!(
                    "created TLS certificate {} (key {}, CA {})",
                    files.cert.display(),
                    files.key.display(),
                    files.ca.display()
                ));
            }
            let listener = tls_from_files(&files.cert, &files.key, &client_certificates)?;
            (listener, Some(files.ca))
        }
        TlsSetting::Files { cert, key } => (tls_from_files(cert, key, &client_certificates)?, None),
        TlsSetting::Pem { cert, key } => {
            let listener = tls_listener(cert.as_bytes(), key.0.as_bytes(), &client_certificates)
                .context("TLS setup with SGT_TLS_CERT_PEM and SGT_TLS_KEY_PEM")?;
            (listener, None)
        }
        TlsSetting::Off => (Listener::PlainHttp, None),
    };

    let new_db = match &settings.storage {
        StorageSetting::Sqlite { path } => (!path.exists()).then_some(path),
        StorageSetting::Dynamodb { .. } => None,
    };
    let backends = build_backends(settings).await?;
    if let Some(db_path) = new_db {
        report.push(format!(
            "created SQLite database {}",
            std::path::absolute(db_path)?.display()
        ));
    }
    // A shared store (DynamoDB, many instances) is set up by `sgt provision` from an
    // operator's machine, where the secret and password files are kept. An instance that
    // created them itself would write them into its own disk, which on a container is lost.
    let shared_store = matches!(settings.storage, StorageSetting::Dynamodb { .. });
    if shared_store {
        if backends.store.list_users().await?.is_empty() {
            report.push(
                "warning: the store has no users yet; run `sgt provision` (or `sgt deploy`) with the same settings"
                    .into(),
            );
        }
    } else {
        let secret_file = std::path::absolute(settings.enroll_secret_file())?;
        let created = bootstrap(&backends, &secret_file).await?;
        if created.environment {
            report.push("created environment \"default\" with the default osquery config".into());
        }
        if created.enroll_secret {
            report.push(format!(
                "created enroll secret for environment \"default\": {}",
                secret_file.display()
            ));
        }
    }

    let app = App::new(backends, &settings.service_limits);
    let service = Arc::clone(app.agent());
    let admin = Arc::clone(app.admin());
    let password_file = std::path::absolute(settings.admin_password_file())?;
    if !shared_store && bootstrap_admin(app.admin(), &password_file).await? {
        report.push(format!(
            "created user \"admin\"; its password is in {}",
            password_file.display()
        ));
    }

    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let tls = matches!(listener_mode, Listener::Tls { .. });
    let limits = fit_connections_to_open_files(settings, &mut report)?;
    let server = tokio::spawn({
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = app.serve(listener, listener_mode, limits, shutdown).await {
                tracing::error!(error = %e, "server stopped");
            }
        }
    });
    let flusher = tokio::spawn({
        let service = Arc::clone(&service);
        let admin = Arc::clone(&admin);
        let mut stopped = stopped;
        async move {
            let mut tick = tokio::time::interval(LAST_SEEN_FLUSH_INTERVAL);
            let mut expiry_sweep = tokio::time::interval(NODE_EXPIRY_SWEEP_INTERVAL);
            let mut refresh = tokio::time::interval(CACHE_REFRESH_INTERVAL);
            let mut carve_sweep = tokio::time::interval(CARVE_SWEEP_INTERVAL);
            // Assembly may take minutes: it runs beside this loop, one sweep at a time.
            let mut sweeping: Option<tokio::task::JoinHandle<()>> = None;
            loop {
                tokio::select! {
                    _ = carve_sweep.tick() => {
                        if sweeping.as_ref().is_none_or(|s| s.is_finished()) {
                            let service = Arc::clone(&service);
                            sweeping = Some(tokio::spawn(async move {
                                match service.sweep_carves().await {
                                    Ok(sweep) if sweep == Default::default() => {}
                                    Ok(sweep) => tracing::info!(assembled = sweep.assembled, expired = sweep.expired, "carves swept"),
                                    Err(e) => tracing::warn!(error = %e, "carves not listed for the sweep"),
                                }
                            }));
                        }
                    }
                    _ = expiry_sweep.tick() => {
                        match admin.expire_nodes(sgt_core::types::now_unix()).await {
                            Ok(sweep) if sweep.expired > 0 => tracing::info!(expired = sweep.expired, "nodes expired"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "node expiry sweep failed"),
                        }
                    }
                    _ = tick.tick() => {
                        if let Err(e) = service.flush_last_seen().await {
                            tracing::warn!(error = %e, "last-seen flush failed");
                        }
                    }
                    _ = refresh.tick() => {
                        if let Err(e) = service.refresh_cache().await {
                            tracing::warn!(error = %e, "node cache refresh failed");
                        }
                    }
                    _ = stopped.changed() => return,
                }
            }
        }
    });
    Ok(StartedServer {
        local_addr,
        tls,
        ca_file,
        service,
        admin,
        report,
        stop,
        server,
        flusher,
    })
}

fn tls_from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_certificates: &ClientCertificates,
) -> anyhow::Result<Listener> {
    let listener = tls_listener(&read_pem(cert)?, &read_pem(key)?, client_certificates)
        .with_context(|| format!("TLS setup with {}", cert.display()))?;
    Ok(listener)
}

fn read_pem(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
