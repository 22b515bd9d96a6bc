//! `sgt`: an osquery TLS server.

// The API's warp filter chain nests deeper than the default limit in release builds.
#![recursion_limit = "256"]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sgt_bin::settings::{Overrides, Settings};

#[derive(Parser)]
#[command(name = "sgt", version, about = "An osquery TLS management server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (first start creates everything under the data directory).
    Serve(ServerArgs),
    /// Print an osquery flag file that points an agent at this server.
    OsqueryFlags {
        #[command(flatten)]
        server: ServerArgs,
        /// The host name agents use to reach the server (default: localhost).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Create what the configured backends need (DynamoDB tables, buckets, Firehose stream,
    /// the default environment, its enroll secret and user admin); idempotent.
    Provision {
        #[command(flatten)]
        server: ServerArgs,
        /// Bucket for a new Firehose delivery stream to write into.
        #[arg(long)]
        log_bucket: Option<String>,
        /// IAM role a new Firehose delivery stream writes with.
        #[arg(long)]
        firehose_role_arn: Option<String>,
    },
    /// Simulate many osquery agents against a server and report latency and errors.
    Loadtest(Box<sgt_bin::loadtest::LoadtestArgs>),
    #[command(flatten)]
    Admin(sgt_bin::cli::AdminCommand),
}

#[derive(Args)]
struct ServerArgs {
    /// TOML settings file.
    #[arg(long, env = "SGT_CONFIG")]
    config: Option<PathBuf>,
    /// Where local state lives [default: ./sgt-data].
    #[arg(long, env = "SGT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "SGT_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "SGT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SGT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP, for use behind a load balancer that terminates TLS.
    #[arg(long, env = "SGT_INSECURE_HTTP", value_parser = clap::builder::BoolishValueParser::new())]
    insecure_http: bool,
    /// Store backend URL: sqlite://PATH or dynamodb://PREFIX [default: sqlite in the data dir].
    #[arg(long, env = "SGT_STORAGE")]
    storage: Option<String>,
    /// Enroll secret backend URL: file://PATH or ssm:///PREFIX.
    #[arg(long, env = "SGT_SECRETS")]
    secrets: Option<String>,
    /// Log sink URL: file://DIR or firehose://STREAM.
    #[arg(long, env = "SGT_LOG_SINK")]
    log_sink: Option<String>,
    /// Blob backend URL: file://DIR or s3://BUCKET/PREFIX.
    #[arg(long, env = "SGT_BLOBS")]
    blobs: Option<String>,
}

impl ServerArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        Settings::resolve(&Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            insecure_http: self.insecure_http,
            storage: self.storage.clone(),
            secrets: self.secrets.clone(),
            log_sink: self.log_sink.clone(),
            blobs: self.blobs.clone(),
        })
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let settings = args.settings()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(settings))
        }
        Command::Admin(command) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(sgt_bin::cli::run(command)),
        Command::Provision {
            server,
            log_bucket,
            firehose_role_arn,
        } => {
            let settings = server.settings()?;
            let options = sgt_bin::provision::ProvisionOptions {
                log_bucket,
                firehose_role_arn,
            };
            let report = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(sgt_bin::provision::provision(&settings, &options))?;
            for line in report {
                say(&line);
            }
            Ok(())
        }
        Command::Loadtest(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(sgt_bin::loadtest::run(*args)),
        Command::OsqueryFlags { server, hostname } => {
            let settings = server.settings()?;
            if !settings.enroll_secret_file().exists() {
                eprintln!(
                    "note: {} does not exist yet: run `sgt serve` once with the same settings first",
                    settings.enroll_secret_file().display()
                );
            }
            print!(
                "{}",
                sgt_bin::osquery_flags::render(&settings, hostname.as_deref())?
            );
            Ok(())
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let server = sgt_bin::serve::start(&settings).await?;
    for line in &server.report {
        say(line);
    }
    say(&format!("listening on {}", server.url()));
    say("point an osquery agent here with: sgt osquery-flags > osquery.flags");
    wait_for_signal().await;
    say("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Tells the operator something on stdout. A closed stdout (`sgt serve | head`) must not
/// bring the server down, so write errors are ignored.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "sgt: {line}");
    let _ = out.flush();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
