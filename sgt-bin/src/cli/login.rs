//! `sgt login`, `sgt whoami`.

use std::io::IsTerminal;
use std::path::Path;

use super::client::AdminClient;
use super::context::{name_for, Contexts, SavedContext};
use super::{read_password, Connection};
use crate::admin_types::LoginRequest;

/// Logs in and saves the context (named by `--context`, else by the URL's host and port) as
/// the current one. Prints the session token when standard output is not a terminal, the
/// whole answer with `--json`.
pub(super) async fn login(
    conn: &Connection,
    username: String,
    password_file: Option<&Path>,
) -> anyhow::Result<()> {
    let password = read_password(password_file)?;
    let mut contexts = Contexts::load()?;
    // Logging in again to a saved context needs only its name (or nothing, for the
    // current one): its URL and CA are reused.
    let named = conn
        .context_name
        .as_deref()
        .filter(|name| contexts.contexts.contains_key(*name));
    let target = Connection {
        context_name: named.map(str::to_owned),
        token: None,
        ..conn.clone()
    }
    .target()?;
    let client = AdminClient::with_ca_pem(&target.url, None, target.ca_pem.as_deref())?;
    let outcome = client.login(&LoginRequest { username, password }).await?;
    let name = conn
        .context_name
        .clone()
        .unwrap_or_else(|| name_for(&target.url));
    contexts.contexts.insert(
        name.clone(),
        SavedContext {
            url: target.url.clone(),
            ca_pem: target
                .ca_pem
                .map(|pem| String::from_utf8_lossy(&pem).into_owned()),
            token: outcome.token.clone(),
            username: outcome.username.to_string(),
            expires_at: outcome.expires_at,
        },
    );
    contexts.current = Some(name.clone());
    let saved_in = contexts.save()?;
    eprintln!(
        "logged in to {} as {} ({}); context {name} saved in {}",
        target.url,
        outcome.username,
        outcome.role.as_str(),
        saved_in.display()
    );
    if conn.json {
        conn.show(&outcome, &[]);
    } else if !std::io::stdout().is_terminal() {
        println!("{}", outcome.token);
    }
    Ok(())
}

/// Prints who the token belongs to.
pub(super) async fn whoami(conn: &Connection) -> anyhow::Result<()> {
    let caller = conn.client()?.me().await?;
    conn.show(&caller, &[]);
    Ok(())
}
