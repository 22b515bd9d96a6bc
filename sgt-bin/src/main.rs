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
    /// Deploy an environment to AWS: terraform init, plan and apply with
    /// deploy/environments/ENV.tfvars (state in S3), then provision it.
    Deploy {
        #[command(flatten)]
        target: DeployTarget,
        /// Stop after the plan: show what would change, change nothing.
        #[arg(long)]
        plan: bool,
        /// First create the Terraform state bucket named in the tfvars (versioned,
        /// private) unless it exists.
        #[arg(long)]
        create_state_bucket: bool,
        /// Where provisioning writes the default enroll secret and the admin password
        /// [default: ./sgt-data-ENV].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Destroy an environment's AWS resources (asks you to type its name).
    Destroy {
        #[command(flatten)]
        target: DeployTarget,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Simulate many osquery agents against a server and report latency and errors.
    Loadtest(Box<sgt_bin::loadtest::LoadtestArgs>),
    #[command(flatten)]
    Admin(sgt_bin::cli::AdminCommand),
}

#[derive(Args)]
struct DeployTarget {
    /// The environment: deploy/environments/ENV.tfvars.
    #[arg(long = "env")]
    env: String,
    /// The folder holding terraform/ and environments/.
    #[arg(long, default_value = "deploy")]
    deploy_dir: PathBuf,
    /// Terraform's executable [default: terraform on the PATH].
    #[arg(long, env = "SGT_TERRAFORM")]
    terraform: Option<String>,
}

impl DeployTarget {
    fn request(&self) -> sgt_bin::deploy::DeployRequest {
        sgt_bin::deploy::DeployRequest {
            env: self.env.clone(),
            deploy_dir: self.deploy_dir.clone(),
            terraform: self.terraform.clone(),
        }
    }
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
    /// Serve /metrics only to these networks, comma-separated (e.g. 10.0.0.0/16)
    /// [default: every caller].
    #[arg(long, env = "SGT_METRICS_ALLOW", value_delimiter = ',')]
    metrics_allow: Vec<String>,
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
            metrics_allow: self.metrics_allow.clone(),
            tls_pem: tls_pem_from_env()?,
        })
    }
}

/// `SGT_TLS_CERT_PEM` and `SGT_TLS_KEY_PEM`: environment only, since a key on the command
/// line would show in the process list.
fn tls_pem_from_env() -> anyhow::Result<Option<(String, sgt_bin::settings::PrivateKeyPem)>> {
    let cert = std::env::var("SGT_TLS_CERT_PEM")
        .ok()
        .filter(|v| !v.is_empty());
    let key = std::env::var("SGT_TLS_KEY_PEM")
        .ok()
        .filter(|v| !v.is_empty());
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some((cert, sgt_bin::settings::PrivateKeyPem(key)))),
        _ => anyhow::bail!("SGT_TLS_CERT_PEM and SGT_TLS_KEY_PEM must be set together"),
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
            let settings = args.settings()?;
            if settings.logs_to_stdout() {
                MESSAGES_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            init_tracing(settings.logs_to_stdout());
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
        Command::Deploy {
            target,
            plan,
            create_state_bucket,
            data_dir,
        } => {
            let data_dir =
                data_dir.unwrap_or_else(|| PathBuf::from(format!("sgt-data-{}", target.env)));
            let report = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(sgt_bin::deploy::deploy(
                    &target.request(),
                    plan,
                    create_state_bucket,
                    &data_dir,
                ))?;
            for line in report {
                say(&line);
            }
            Ok(())
        }
        Command::Destroy { target, yes } => {
            sgt_bin::deploy::destroy(&target.request(), |environment| {
                if yes {
                    return Ok(true);
                }
                eprint!(
                    "This destroys environment {} in {}: its tables, buckets, log stream and service.\nType the environment's name to confirm: ",
                    environment.name, environment.region
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                Ok(answer.trim() == environment.name)
            })?;
            say(&format!("environment {} destroyed", target.env));
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

/// Set when a log route writes records to standard output: the server's messages then go
/// to standard error, so stdout holds records only.
static MESSAGES_TO_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn init_tracing(to_stderr: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if to_stderr {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Registered before the server starts: a SIGTERM that arrives as soon as the server
    // listens (an orchestrator scaling in) must drain it, not kill the process.
    let stop_signal = shutdown_signal()?;
    let server = sgt_bin::serve::start(&settings).await?;
    for line in &server.report {
        say(line);
    }
    say(&format!("listening on {}", server.url()));
    say("point an osquery agent here with: sgt osquery-flags > osquery.flags");
    stop_signal.await;
    say("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Tells the operator something on stdout. A closed stdout (`sgt serve | head`) must not
/// bring the server down, so write errors are ignored.
fn say(line: &str) {
    use std::io::Write;
    if MESSAGES_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "sgt: {line}");
        let _ = out.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "sgt: {line}");
        let _ = out.flush();
    }
}

/// Registers for SIGTERM and SIGINT (Ctrl-C) now; the future completes at the first of them.
///
/// # Errors
/// When the signal handlers cannot be installed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
