//! `sgt token …`: API tokens for automation.

use clap::Subcommand;

use super::Connection;
use crate::admin_types::{NewToken, TokenListParams};

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

pub(super) async fn run(conn: &Connection, action: TokenAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        TokenAction::List { all } => conn.show(
            &api.list_tokens(&TokenListParams { all }).await?,
            &["id", "username", "kind", "name", "created_at", "expires_at"],
        ),
        TokenAction::Create {
            name,
            expires_in_days,
        } => {
            let created = api
                .create_token(&NewToken {
                    name,
                    username: None,
                    expires_in_days,
                })
                .await?;
            if conn.json {
                conn.show(&created, &[]);
            } else {
                println!("{}", created.token);
                eprintln!("token {} created; it is shown only now", created.record.id);
            }
        }
        TokenAction::Revoke { id } => {
            api.revoke_token(&id).await?;
            eprintln!("token {id} revoked");
        }
    }
    Ok(())
}
