//! The admin CLI: `sgt login`, `sgt env …`, `sgt pack …`, `sgt secret …`, `sgt node …`,
//! `sgt label …`, `sgt query …`, `sgt carve …`, `sgt user …`, `sgt token …`, `sgt audit`, `sgt apply -f
//! FILE`. One module per command group; each calls the admin API through
//! [`client::AdminClient`], the only place that knows a URL.

mod apply;
mod audit;
mod carves;
pub mod client;
mod context;
mod environments;
mod export;
mod labels;
mod login;
mod nodes;
mod output;
mod packs;
mod queries;
mod secrets;
mod tokens;
mod users;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use sgt_core::store::Role;
use sgt_core::types::EnvironmentName;

pub use carves::CarveAction;
pub use context::ContextAction;
pub use environments::EnvAction;
pub use labels::LabelAction;
pub use nodes::NodeAction;
pub use packs::PackAction;
pub use queries::QueryAction;
pub use secrets::SecretAction;
pub use tokens::TokenAction;
pub use users::UserAction;

use crate::admin_types::AuditListParams;
use client::AdminClient;

/// The server commands talk to when neither `--url`, `SGT_URL` nor a saved context names one.
const DEFAULT_URL: &str = "https://localhost:8443";

/// Where the server is and who is calling; shared by every admin command.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The server's base URL [default: the current context's, else https://localhost:8443].
    #[arg(long, env = "SGT_URL", global = true)]
    url: Option<String>,
    /// A bearer token [default: the context's, when the URL is the context's].
    #[arg(long, env = "SGT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate to trust [default: the context's, else ./sgt-data/tls/ca.pem when it
    /// exists].
    #[arg(long, env = "SGT_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// A saved context to use instead of the current one (`sgt login` saves them).
    #[arg(long = "context", env = "SGT_CONTEXT", global = true)]
    context_name: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// Where a command goes and with what: the URL, the token, the CA's PEM text.
struct Target {
    url: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

impl Connection {
    /// The URL, token and CA a command uses: flags and environment first, then the chosen
    /// saved context (its token and CA only for its own URL), then the defaults.
    fn target(&self) -> anyhow::Result<Target> {
        let contexts = context::Contexts::load()?;
        let chosen = contexts
            .chosen(self.context_name.as_deref())?
            .map(|(_, c)| c);
        let url = self
            .url
            .clone()
            .or_else(|| chosen.map(|c| c.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let same_server =
            chosen.filter(|c| c.url.trim_end_matches('/') == url.trim_end_matches('/'));
        let token = self
            .token
            .clone()
            .or_else(|| same_server.map(|c| c.token.clone()));
        let local_ca = PathBuf::from("sgt-data/tls/ca.pem");
        let ca_pem = match &self.ca_cert {
            Some(file) => Some(
                std::fs::read(file)
                    .with_context(|| format!("cannot read CA certificate {}", file.display()))?,
            ),
            None => match same_server.and_then(|c| c.ca_pem.clone()) {
                Some(pem) => Some(pem.into_bytes()),
                None if local_ca.exists() => Some(
                    std::fs::read(&local_ca)
                        .with_context(|| format!("cannot read {}", local_ca.display()))?,
                ),
                None => None,
            },
        };
        Ok(Target { url, token, ca_pem })
    }

    fn client(&self) -> anyhow::Result<AdminClient> {
        let target = self.target()?;
        AdminClient::with_ca_pem(&target.url, target.token, target.ca_pem.as_deref())
    }

    /// Prints an answer: JSON with `--json`; else a list as a table of `columns`, or one
    /// object as `key: value` lines.
    fn show(&self, answer: &impl Serialize, columns: &[&str]) {
        let value = serde_json::to_value(answer).unwrap_or_default();
        if self.json {
            output::json(&value);
        } else if let Some(items) = value.as_array() {
            output::table(items, columns);
        } else {
            output::fields(&value);
        }
    }
}

/// An admin command.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Log in and save the server, its CA and the session as a context, made current;
    /// prints the token when standard output is not a terminal (`SGT_TOKEN=$(sgt login)`).
    Login {
        #[command(flatten)]
        conn: Connection,
        /// User name.
        #[arg(long, default_value = "admin")]
        username: String,
        /// File holding the password [default: SGT_PASSWORD, else standard input].
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Saved contexts (from `sgt login`): list, switch, forget. Lists when given no action.
    Context {
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: Option<ContextAction>,
    },
    /// Show who the token belongs to and their role.
    Whoami {
        #[command(flatten)]
        conn: Connection,
    },
    /// Environments and their osquery config.
    Env {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Query packs in an environment's config.
    Pack {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: PackAction,
    },
    /// Enroll secrets.
    Secret {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Enrolled nodes.
    Node {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Labels: named groups of nodes for campaigns, packs and node lists.
    Label {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: LabelAction,
    },
    /// Live queries.
    Query {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: QueryAction,
    },
    /// File carves.
    Carve {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: CarveAction,
    },
    /// Admin API users.
    User {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens for automation.
    Token {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// The audit log of changes made through the admin API, newest first.
    Audit {
        #[command(flatten)]
        conn: Connection,
        /// How many entries at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only changes by this user.
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this, e.g. `query.` or `environment.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only changes to this target (environment name, query id, user name, ...).
        #[arg(long)]
        target: Option<String>,
        /// Only changes since this: a duration back from now (`2h`, `7days`) or a time.
        #[arg(long, value_parser = audit::since_arg)]
        since: Option<i64>,
    },
    /// Make environments, configs, packs, labels and saved queries match a YAML or JSON file.
    Apply {
        #[command(flatten)]
        conn: Connection,
        /// The file (`environments: {NAME: {config: {...}, packs: {...}}}`,
        /// `labels: {NAME: {environment: ..., query: ..., platform: ..., description: ...}}`,
        /// `saved_queries: {NAME: {sql: ..., description: ...}}`), or - for standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show what would change without changing it.
        #[arg(long)]
        dry_run: bool,
        /// Also delete, in each section the file has, what it does not name.
        #[arg(long)]
        prune: bool,
    },
    /// Print the environments (config and packs), labels and saved queries as `sgt apply`
    /// reads them.
    Export {
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs an admin command.
///
/// # Errors
/// The server's error, or a local one (unreadable file, bad argument).
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Login {
            conn,
            username,
            password_file,
        } => login::login(&conn, username, password_file.as_deref()).await,
        AdminCommand::Context { json, action } => context::run(action, json),
        AdminCommand::Whoami { conn } => login::whoami(&conn).await,
        AdminCommand::Env { conn, action } => environments::run(&conn, action).await,
        AdminCommand::Pack { conn, action } => packs::run(&conn, action).await,
        AdminCommand::Secret { conn, action } => secrets::run(&conn, action).await,
        AdminCommand::Node { conn, action } => nodes::run(&conn, action).await,
        AdminCommand::Label { conn, action } => labels::run(&conn, action).await,
        AdminCommand::Query { conn, action } => queries::run(&conn, action).await,
        AdminCommand::Carve { conn, action } => carves::run(&conn, action).await,
        AdminCommand::User { conn, action } => users::run(&conn, action).await,
        AdminCommand::Token { conn, action } => tokens::run(&conn, action).await,
        AdminCommand::Audit {
            conn,
            limit,
            actor,
            action,
            target,
            since,
        } => {
            let params = AuditListParams {
                actor,
                action,
                target,
                since,
                ..AuditListParams::default()
            };
            audit::run(&conn, params, limit).await
        }
        AdminCommand::Apply {
            conn,
            file,
            dry_run,
            prune,
        } => apply::apply(&conn.client()?, &read_document(&file)?, dry_run, prune).await,
        AdminCommand::Export { conn } => {
            let document = export::document(&conn.client()?).await?;
            print!("{}", export::render(&document, conn.json)?);
            Ok(())
        }
    }
}

/// Reads a JSON or YAML file (`-`: standard input) into a value.
fn read_document(path: &Path) -> anyhow::Result<Value> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
    } else {
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))
    }
}

/// Reads a password from a file (trimmed), or else from `SGT_PASSWORD`, or else a line of
/// standard input.
///
/// # Errors
/// When none gives a password.
fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(file) = file {
        return Ok(std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_owned());
    }
    if let Ok(password) = std::env::var("SGT_PASSWORD") {
        return Ok(password);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim().to_owned();
    if password.is_empty() {
        bail!("no password given (use --password-file, SGT_PASSWORD or standard input)");
    }
    Ok(password)
}

/// An environment name argument, checked before anything is sent.
fn environment_arg(value: &str) -> Result<EnvironmentName, String> {
    EnvironmentName::parse(value).map_err(|e| e.to_string())
}

/// A label name argument, checked before any request.
fn label_arg(value: &str) -> Result<sgt_core::types::LabelName, String> {
    sgt_core::types::LabelName::parse(value).map_err(|e| e.to_string())
}

/// A role argument: `viewer`, `operator` or `admin`.
fn role_arg(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| format!("{value:?} is no role (viewer, operator, admin)"))
}
