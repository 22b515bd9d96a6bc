//! `sgt secret …`: enroll secrets.

use clap::Subcommand;

use super::Connection;
use crate::admin_types::NewSecret;

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

const COLUMNS: [&str; 6] = [
    "id",
    "environment",
    "created_at",
    "expires_at",
    "last_used_at",
    "use_count",
];

pub(super) async fn run(conn: &Connection, action: SecretAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        SecretAction::List { env } => conn.show(&api.list_secrets(&env).await?, &COLUMNS),
        SecretAction::Create {
            env,
            expires_in_days,
        } => {
            let created = api
                .create_secret(&env, &NewSecret { expires_in_days })
                .await?;
            if conn.json {
                conn.show(&created, &COLUMNS);
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "secret {} created; its value is shown only now",
                    created.record.id
                );
            }
        }
        SecretAction::Revoke { env, id } => {
            api.revoke_secret(&env, &id).await?;
            eprintln!("secret {id} revoked");
        }
    }
    Ok(())
}
