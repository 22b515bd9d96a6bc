//! `sgt login`, `sgt whoami`.

use std::path::Path;

use super::{read_password, Connection};
use crate::admin_types::LoginRequest;

/// Logs in; prints the session token (or the whole answer with `--json`).
pub(super) async fn login(
    conn: &Connection,
    username: String,
    password_file: Option<&Path>,
) -> anyhow::Result<()> {
    let password = read_password(password_file)?;
    let outcome = conn
        .client()?
        .login(&LoginRequest { username, password })
        .await?;
    if conn.json {
        conn.show(&outcome, &[]);
    } else {
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
