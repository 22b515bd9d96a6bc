//! `sgt user …`: admin API users.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{read_password, role_arg, Connection};
use crate::admin_types::{NewUser, UserUpdate};
use sgt_core::store::Role;

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
        #[arg(long, value_parser = role_arg)]
        role: Role,
        /// File holding the password [default: SGT_PASSWORD, else standard input].
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Change a user's role.
    SetRole {
        /// Name.
        username: String,
        /// viewer, operator or admin.
        #[arg(value_parser = role_arg)]
        role: Role,
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

const COLUMNS: [&str; 3] = ["username", "role", "created_at"];

pub(super) async fn run(conn: &Connection, action: UserAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    let user = match action {
        UserAction::List => {
            conn.show(&api.list_users().await?, &COLUMNS);
            return Ok(());
        }
        UserAction::Create {
            username,
            role,
            password_file,
        } => {
            let password = read_password(password_file.as_deref())?;
            api.create_user(&NewUser {
                username,
                role,
                password,
            })
            .await?
        }
        UserAction::SetRole { username, role } => {
            let update = UserUpdate {
                role: Some(role),
                ..UserUpdate::default()
            };
            api.update_user(&username, &update).await?
        }
        UserAction::SetPassword {
            username,
            password_file,
            current_password_file,
        } => {
            let password = read_password(password_file.as_deref())?;
            let current_password = match current_password_file {
                Some(file) => Some(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                        .trim()
                        .to_owned(),
                ),
                None => std::env::var("SGT_CURRENT_PASSWORD").ok(),
            };
            let update = UserUpdate {
                password: Some(password),
                current_password,
                ..UserUpdate::default()
            };
            api.update_user(&username, &update).await?
        }
        UserAction::Delete { username } => {
            api.delete_user(&username).await?;
            eprintln!("user {username} deleted");
            return Ok(());
        }
    };
    conn.show(&user, &COLUMNS);
    Ok(())
}
