//! The admin CLI: `sgt login`, `sgt env …`, `sgt secret …`, `sgt node …`, `sgt query …`,
//! `sgt carve …`, `sgt user …`, `sgt token …`, `sgt apply -f FILE`, all through the admin API.

mod apply;
pub mod client;
mod output;
mod query;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use client::{read_password, ApiClient};

/// Where the server is and who is calling; shared by every admin command.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The server's base URL.
    #[arg(
        long,
        env = "SGT_URL",
        default_value = "https://localhost:8443",
        global = true
    )]
    url: String,
    /// A bearer token (from `sgt login` or `sgt token create`).
    #[arg(long, env = "SGT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate to trust [default: ./sgt-data/tls/ca.pem when it exists].
    #[arg(long, env = "SGT_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl Connection {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let local_ca = PathBuf::from("sgt-data/tls/ca.pem");
        let ca = self
            .ca_cert
            .clone()
            .or_else(|| local_ca.exists().then_some(local_ca));
        ApiClient::new(&self.url, self.token.clone(), ca.as_deref())
    }
}

/// An admin command.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Log in; prints a session token (use it as SGT_TOKEN).
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
    /// Environments and their osquery config.
    Env {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: EnvAction,
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
    /// Make environments, configs and packs match a YAML or JSON file.
    Apply {
        #[command(flatten)]
        conn: Connection,
        /// The file (`environments: {NAME: {config: {...}, packs: {...}}}`).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show what would change without changing it.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `sgt env …`
#[derive(Subcommand, Debug)]
pub enum EnvAction {
    /// List environments.
    List,
    /// Create an environment (with the default config unless --config is given).
    Create {
        /// Name.
        name: String,
        /// A JSON or YAML osquery config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show an environment.
    Show {
        /// Name.
        name: String,
    },
    /// Delete an environment and revoke its secrets.
    Delete {
        /// Name.
        name: String,
    },
    /// Print the osquery config document.
    GetConfig {
        /// Name.
        name: String,
    },
    /// Replace the osquery config document with a JSON or YAML file.
    SetConfig {
        /// Name.
        name: String,
        /// The file.
        file: PathBuf,
    },
}

/// `sgt secret …`
#[derive(Subcommand, Debug)]
pub enum SecretAction {
    /// List an environment's secrets (never their values).
    List {
        /// Environment.
        env: String,
    },
    /// Create a secret; prints its value once.
    Create {
        /// Environment.
        env: String,
        /// Days until it stops enrolling.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a secret.
    Revoke {
        /// Environment.
        env: String,
        /// Secret id.
        id: String,
    },
}

/// `sgt node …`
#[derive(Subcommand, Debug)]
pub enum NodeAction {
    /// List nodes.
    List {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only this platform (linux, darwin, windows, freebsd).
        #[arg(long)]
        platform: Option<String>,
        /// Only hosts whose identifier or hostname contains this.
        #[arg(long)]
        search: Option<String>,
        /// Only nodes seen within this long (e.g. 10m, 2h).
        #[arg(long)]
        seen_within: Option<humantime::Duration>,
    },
    /// Show a node with its host details.
    Show {
        /// Node id.
        id: String,
    },
    /// Delete a node (its agent re-enrolls).
    Delete {
        /// Node id.
        id: String,
    },
}

/// `sgt query …`
#[derive(Subcommand, Debug)]
pub enum QueryAction {
    /// Run a live query and wait for answers.
    Run {
        /// The SQL.
        sql: String,
        /// Target every node.
        #[arg(long)]
        all: bool,
        /// Target an environment (repeatable).
        #[arg(long = "env")]
        envs: Vec<String>,
        /// Target a platform (repeatable).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Target a node by id (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// How long to wait for answers.
        #[arg(long, default_value = "30s")]
        wait: humantime::Duration,
    },
    /// List live queries.
    List,
    /// Show a live query's progress.
    Show {
        /// Query id.
        id: String,
    },
    /// Print a live query's results.
    Results {
        /// Query id.
        id: String,
    },
    /// Stop delivering a live query.
    Cancel {
        /// Query id.
        id: String,
    },
}

/// `sgt carve …`
#[derive(Subcommand, Debug)]
pub enum CarveAction {
    /// Ask a node for a file (or files: % makes a LIKE pattern).
    Request {
        /// Node id.
        node: String,
        /// Absolute path.
        path: String,
    },
    /// List carves.
    List {
        /// Only this node's.
        #[arg(long)]
        node: Option<String>,
    },
    /// Show a carve.
    Show {
        /// Carve id (as `sgt carve list` shows it).
        id: String,
    },
    /// Download a complete carve's archive.
    Download {
        /// Carve id (as `sgt carve list` shows it).
        id: String,
        /// Where to write it.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// `sgt user …`
#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// List users.
    List,
    /// Create a user.
    Create {
        /// Name.
        username: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// File holding the password [default: SGT_PASSWORD, else standard input].
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Change a user's role.
    SetRole {
        /// Name.
        username: String,
        /// viewer, operator or admin.
        role: String,
    },
    /// Change a user's password (ends the user's other sessions).
    SetPassword {
        /// Name.
        username: String,
        /// File holding the password [default: SGT_PASSWORD, else standard input].
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// File holding your current password, needed to change your own
        /// [default: SGT_CURRENT_PASSWORD].
        #[arg(long)]
        current_password_file: Option<PathBuf>,
    },
    /// Delete a user and their tokens.
    Delete {
        /// Name.
        username: String,
    },
}

/// `sgt token …`
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// List your tokens (--all: everyone's, admins).
    List {
        /// Everyone's.
        #[arg(long)]
        all: bool,
    },
    /// Create an API token; prints it once.
    Create {
        /// A label.
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Reads a JSON or YAML file into a value.
fn read_document(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
    } else {
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))
    }
}

/// Path-segment escaping for ids and names typed by a user.
fn seg(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn show(conn: &Connection, value: &Value, columns: &[&str]) {
    if conn.json {
        output::json(value);
    } else if let Some(items) = value.as_array() {
        output::table(items, columns);
    } else {
        output::fields(value);
    }
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
        } => {
            let password = read_password(password_file.as_deref())?;
            let answer = conn
                .client()?
                .call(
                    Method::POST,
                    "/api/v1/login",
                    Some(&json!({"username": username, "password": password})),
                )
                .await?;
            if conn.json {
                output::json(&answer);
            } else {
                println!("{}", answer["token"].as_str().unwrap_or_default());
            }
        }
        AdminCommand::Env { conn, action } => env(&conn, action).await?,
        AdminCommand::Secret { conn, action } => {
            let api = conn.client()?;
            let value = match action {
                SecretAction::List { env } => {
                    api.get(&format!("/api/v1/environments/{}/secrets", seg(&env)))
                        .await?
                }
                SecretAction::Create {
                    env,
                    expires_in_days,
                } => {
                    let created = api
                        .call(
                            Method::POST,
                            &format!("/api/v1/environments/{}/secrets", seg(&env)),
                            Some(&json!({"expires_in_days": expires_in_days})),
                        )
                        .await?;
                    if !conn.json {
                        println!("{}", created["secret"].as_str().unwrap_or_default());
                        eprintln!(
                            "secret {} created; its value is shown only now",
                            cell_str(&created["id"])
                        );
                        return Ok(());
                    }
                    created
                }
                SecretAction::Revoke { env, id } => {
                    api.call(
                        Method::DELETE,
                        &format!("/api/v1/environments/{}/secrets/{}", seg(&env), seg(&id)),
                        None,
                    )
                    .await?;
                    eprintln!("secret {id} revoked");
                    return Ok(());
                }
            };
            show(
                &conn,
                &value,
                &[
                    "id",
                    "environment",
                    "created_at",
                    "expires_at",
                    "last_used_at",
                    "use_count",
                ],
            );
        }
        AdminCommand::Node { conn, action } => {
            let api = conn.client()?;
            match action {
                NodeAction::List {
                    env,
                    platform,
                    search,
                    seen_within,
                } => {
                    let mut query = Vec::new();
                    if let Some(env) = env {
                        query.push(format!("environment={}", seg(&env)));
                    }
                    if let Some(platform) = platform {
                        query.push(format!("platform={}", seg(&platform)));
                    }
                    if let Some(search) = search {
                        query.push(format!("search={}", seg(&search)));
                    }
                    if let Some(within) = seen_within {
                        let since = sgt_core::types::now_unix() - within.as_secs() as i64;
                        query.push(format!("seen_since={since}"));
                    }
                    let path = if query.is_empty() {
                        "/api/v1/nodes".to_owned()
                    } else {
                        format!("/api/v1/nodes?{}", query.join("&"))
                    };
                    let nodes = Value::Array(api.get_all(&path).await?);
                    show(
                        &conn,
                        &nodes,
                        &[
                            "id",
                            "environment",
                            "host_identifier",
                            "platform",
                            "osquery_version",
                            "last_seen",
                        ],
                    );
                }
                NodeAction::Show { id } => {
                    let node = api.get(&format!("/api/v1/nodes/{}", seg(&id))).await?;
                    if conn.json {
                        output::json(&node);
                    } else {
                        let mut summary = node.clone();
                        if let Some(o) = summary.as_object_mut() {
                            o.remove("host_details");
                        }
                        output::fields(&summary);
                    }
                }
                NodeAction::Delete { id } => {
                    api.call(Method::DELETE, &format!("/api/v1/nodes/{}", seg(&id)), None)
                        .await?;
                    eprintln!("node {id} deleted; its agent will enroll again");
                }
            }
        }
        AdminCommand::Query { conn, action } => query::run(&conn, action).await?,
        AdminCommand::Carve { conn, action } => {
            let api = conn.client()?;
            match action {
                CarveAction::Request { node, path } => {
                    let query = api
                        .call(
                            Method::POST,
                            "/api/v1/carves",
                            Some(&json!({"node_id": node, "path": path})),
                        )
                        .await?;
                    if conn.json {
                        output::json(&query);
                    } else {
                        println!("carve requested as live query {}; the upload appears in `sgt carve list` when the agent starts it", cell_str(&query["id"]));
                    }
                }
                CarveAction::List { node } => {
                    let path = match node {
                        Some(node) => format!("/api/v1/carves?node_id={}", seg(&node)),
                        None => "/api/v1/carves".to_owned(),
                    };
                    let carves = Value::Array(api.get_all(&path).await?);
                    show(
                        &conn,
                        &carves,
                        &[
                            "id",
                            "node_id",
                            "status",
                            "progress_percent",
                            "carve_size",
                            "sha256",
                        ],
                    );
                }
                CarveAction::Show { id } => {
                    let carve = api.get(&format!("/api/v1/carves/{}", seg(&id))).await?;
                    show(&conn, &carve, &[]);
                }
                CarveAction::Download { id, output } => {
                    let bytes = api
                        .download(&format!("/api/v1/carves/{}/archive", seg(&id)), &output)
                        .await?;
                    eprintln!("wrote {bytes} bytes to {}", output.display());
                }
            }
        }
        AdminCommand::User { conn, action } => {
            let api = conn.client()?;
            let value = match action {
                UserAction::List => api.get("/api/v1/users").await?,
                UserAction::Create {
                    username,
                    role,
                    password_file,
                } => {
                    let password = read_password(password_file.as_deref())?;
                    api.call(
                        Method::POST,
                        "/api/v1/users",
                        Some(&json!({"username": username, "role": role, "password": password})),
                    )
                    .await?
                }
                UserAction::SetRole { username, role } => {
                    api.call(
                        Method::PATCH,
                        &format!("/api/v1/users/{}", seg(&username)),
                        Some(&json!({"role": role})),
                    )
                    .await?
                }
                UserAction::SetPassword {
                    username,
                    password_file,
                    current_password_file,
                } => {
                    let password = read_password(password_file.as_deref())?;
                    let current = match current_password_file {
                        Some(file) => Some(
                            std::fs::read_to_string(&file)
                                .with_context(|| format!("reading {}", file.display()))?
                                .trim()
                                .to_owned(),
                        ),
                        None => std::env::var("SGT_CURRENT_PASSWORD").ok(),
                    };
                    let mut body = json!({"password": password});
                    if let Some(current) = current {
                        body["current_password"] = json!(current);
                    }
                    api.call(
                        Method::PATCH,
                        &format!("/api/v1/users/{}", seg(&username)),
                        Some(&body),
                    )
                    .await?
                }
                UserAction::Delete { username } => {
                    api.call(
                        Method::DELETE,
                        &format!("/api/v1/users/{}", seg(&username)),
                        None,
                    )
                    .await?;
                    eprintln!("user {username} deleted");
                    return Ok(());
                }
            };
            show(&conn, &value, &["username", "role", "created_at"]);
        }
        AdminCommand::Token { conn, action } => {
            let api = conn.client()?;
            match action {
                TokenAction::List { all } => {
                    let path = if all {
                        "/api/v1/tokens?all=true"
                    } else {
                        "/api/v1/tokens"
                    };
                    let tokens = api.get(path).await?;
                    show(
                        &conn,
                        &tokens,
                        &["id", "username", "kind", "name", "created_at", "expires_at"],
                    );
                }
                TokenAction::Create {
                    name,
                    expires_in_days,
                } => {
                    let created = api
                        .call(
                            Method::POST,
                            "/api/v1/tokens",
                            Some(&json!({"name": name, "expires_in_days": expires_in_days})),
                        )
                        .await?;
                    if conn.json {
                        output::json(&created);
                    } else {
                        println!("{}", created["token"].as_str().unwrap_or_default());
                        eprintln!(
                            "token {} created; it is shown only now",
                            cell_str(&created["id"])
                        );
                    }
                }
                TokenAction::Revoke { id } => {
                    api.call(
                        Method::DELETE,
                        &format!("/api/v1/tokens/{}", seg(&id)),
                        None,
                    )
                    .await?;
                    eprintln!("token {id} revoked");
                }
            }
        }
        AdminCommand::Apply {
            conn,
            file,
            dry_run,
        } => {
            apply::apply(&conn.client()?, &read_document(&file)?, dry_run).await?;
        }
    }
    Ok(())
}

fn cell_str(value: &Value) -> String {
    output::cell(value)
}

async fn env(conn: &Connection, action: EnvAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    let columns = ["name", "created_at", "config_updated_at"];
    match action {
        EnvAction::List => show(conn, &api.get("/api/v1/environments").await?, &columns),
        EnvAction::Create { name, config } => {
            let config = config.as_deref().map(read_document).transpose()?;
            let created = api
                .call(
                    Method::POST,
                    "/api/v1/environments",
                    Some(&json!({"name": name, "config": config})),
                )
                .await?;
            show(conn, &created, &columns);
        }
        EnvAction::Show { name } => show(
            conn,
            &api.get(&format!("/api/v1/environments/{}", seg(&name)))
                .await?,
            &columns,
        ),
        EnvAction::Delete { name } => {
            api.call(
                Method::DELETE,
                &format!("/api/v1/environments/{}", seg(&name)),
                None,
            )
            .await?;
            eprintln!("environment {name} deleted and its secrets revoked");
        }
        EnvAction::GetConfig { name } => output::json(
            &api.get(&format!("/api/v1/environments/{}/config", seg(&name)))
                .await?,
        ),
        EnvAction::SetConfig { name, file } => {
            let config = read_document(&file)?;
            api.call(
                Method::PUT,
                &format!("/api/v1/environments/{}/config", seg(&name)),
                Some(&config),
            )
            .await?;
            eprintln!("config of {name} replaced; agents get it at their next config poll");
        }
    }
    Ok(())
}
