//! Passwords (argon2id), bearer tokens (opaque, stored as SHA-256), login.
//!
//! Tokens are random 256-bit values rather than signed JWTs: every request looks its token
//! up, so a revoked token or a deleted user stops working at once, with no deny-list.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use super::AdminService;
use crate::admin_types::{Caller, LoginOutcome, NewTokenOutcome, TokenView};
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::store::{ApiToken, Role, TokenKind};
use sgt_core::types::{now_unix, random_hex, UnixSeconds, Username};

/// How long a login session token lives.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Shortest accepted password.
const MIN_PASSWORD_LEN: usize = 12;

/// The argon2id hash of `password` in PHC format.
///
/// # Errors
/// `InvalidInput` for a password shorter than 12 characters.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid_input(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let mut salt_bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt_bytes);
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| Error::backend("argon2", e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::backend("argon2", e.to_string()))
}

/// Whether `password` matches the argon2 `hash`, checked off the async workers (argon2
/// takes tens of milliseconds of CPU).
pub(crate) async fn password_matches(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| Error::backend("argon2", e))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so a wrong name costs as much time
/// as a wrong password and names cannot be probed by timing.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            username: t.username,
            kind: t.kind,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

impl AdminService {
    /// Checks a user name and password from `source` (when known); returns a session token.
    /// The user's expired tokens are deleted on the way.
    ///
    /// # Errors
    /// `RateLimited` past the login limits (every attempt counts, successful or not);
    /// `Unauthorized` for an unknown user or a wrong password (the same answer for both).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<LoginOutcome> {
        self.admit_login(username, source)?;
        let refused = || Error::unauthorized("invalid user name or password");
        let user = match Username::parse(username) {
            Ok(name) => match self.backends.store.user(&name).await {
                Ok(user) => Some(user),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or_else(|| decoy_hash(), |u| u.password_hash.as_str());
        let verified = password_matches(password, hash).await?;
        let user = match user {
            Some(user) if verified => user,
            _ => return Err(refused()),
        };
        let now = now_unix();
        self.purge_expired_tokens(&user.username, now).await;
        let token = format!("sgt_{}", random_hex(32));
        let expires_at = now + SESSION_SECONDS;
        self.backends
            .store
            .create_token(&ApiToken {
                id: random_hex(8),
                username: user.username.clone(),
                user_id: user.id.clone(),
                kind: TokenKind::Session,
                name: "login".into(),
                token_hash: token_hash(&token),
                created_at: now,
                expires_at: Some(expires_at),
            })
            .await?;
        Ok(LoginOutcome {
            token,
            expires_at,
            username: user.username,
            role: user.role,
        })
    }

    /// Deletes `username`'s expired tokens, so sessions do not pile up. Failures are logged:
    /// an expired token is refused whether or not it is deleted.
    async fn purge_expired_tokens(&self, username: &Username, now: UnixSeconds) {
        let expired = |t: &ApiToken| t.expires_at.is_some_and(|e| e <= now);
        if let Err(e) = self.delete_tokens_where(username, expired).await {
            tracing::warn!(error = %e, "expired tokens not purged");
        }
    }

    /// Deletes `username`'s tokens that `doomed` selects.
    async fn delete_tokens_where(
        &self,
        username: &Username,
        doomed: impl Fn(&ApiToken) -> bool,
    ) -> Result<()> {
        for token in self.backends.store.list_tokens(Some(username)).await? {
            if doomed(&token) {
                self.backends.store.delete_token(&token.id).await?;
            }
        }
        Ok(())
    }

    /// The caller a bearer token belongs to.
    ///
    /// # Errors
    /// `Unauthorized` for a missing, unknown, revoked or expired token, or a deleted user.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        let refused = || Error::unauthorized("a valid bearer token is required");
        let token = bearer.filter(|t| !t.is_empty()).ok_or_else(refused)?;
        let record = match self.backends.store.token_by_hash(&token_hash(token)).await {
            Ok(record) => record,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(refused()),
            Err(e) => return Err(e),
        };
        if record.expires_at.is_some_and(|t| now_unix() >= t) {
            return Err(refused());
        }
        match self.backends.store.user(&record.username).await {
            // A token outlived its user (DynamoDB finds a user's tokens through an eventually
            // consistent index) and the name now belongs to someone else.
            Ok(user) if user.id != record.user_id => Err(refused()),
            Ok(user) => Ok(Caller {
                username: user.username,
                role: user.role,
                token_id: record.id,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(refused()),
            Err(e) => Err(e),
        }
    }

    /// Creates a long-lived API token for the caller, or for `owner` (admins only).
    /// Viewers cannot create tokens (it is a write).
    ///
    /// # Errors
    /// `Forbidden` for viewers or for another owner without the admin role; `InvalidInput`
    /// for a bad name or lifetime; `NotFound` for an unknown owner.
    pub async fn create_api_token(
        &self,
        caller: &Caller,
        name: &str,
        owner: Option<&str>,
        expires_in_days: Option<u32>,
    ) -> Result<NewTokenOutcome> {
        caller.require(Role::Operator)?;
        let owner = match owner {
            Some(owner) => Username::parse(owner)?,
            None => caller.username.clone(),
        };
        if owner != caller.username {
            caller.require(Role::Admin)?;
        }
        let owner_id = self.backends.store.user(&owner).await?.id;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(Error::invalid_input(
                "token name must be 1 to 128 printable characters",
            ));
        }
        if expires_in_days == Some(0) {
            return Err(Error::invalid_input("expires_in_days must be at least 1"));
        }
        let now = now_unix();
        let token = format!("sgt_{}", random_hex(32));
        let record = ApiToken {
            id: random_hex(8),
            username: owner,
            user_id: owner_id,
            kind: TokenKind::Api,
            name: name.to_owned(),
            token_hash: token_hash(&token),
            created_at: now,
            expires_at: expires_in_days.map(|d| now + i64::from(d) * 86_400),
        };
        self.backends.store.create_token(&record).await?;
        self.audit(
            caller,
            "token.create",
            &record.id,
            serde_json::json!({"owner": record.username, "name": record.name, "expires_at": record.expires_at}),
        )
        .await;
        Ok(NewTokenOutcome {
            token,
            record: record.into(),
        })
    }

    /// The caller's tokens; admins may ask for everyone's (`all`).
    ///
    /// # Errors
    /// `Forbidden` for `all` without the admin role; backend errors.
    pub async fn list_tokens(&self, caller: &Caller, all: bool) -> Result<Vec<TokenView>> {
        let owner = if all {
            caller.require(Role::Admin)?;
            None
        } else {
            Some(&caller.username)
        };
        Ok(self
            .backends
            .store
            .list_tokens(owner)
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect())
    }

    /// Ends `username`'s session tokens except `keep` (API tokens stay: they are revoked one
    /// by one).
    pub(crate) async fn end_sessions(&self, username: &Username, keep: Option<&str>) -> Result<()> {
        self.delete_tokens_where(username, |t| {
            t.kind == TokenKind::Session && Some(t.id.as_str()) != keep
        })
        .await
    }

    /// Revokes a token: the caller's own (every role), or anyone's (admins).
    ///
    /// # Errors
    /// `NotFound` for an unknown id or another user's token without the admin role.
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<()> {
        let mine = self
            .backends
            .store
            .list_tokens(Some(&caller.username))
            .await?
            .iter()
            .any(|t| t.id == id);
        if !mine && caller.role < Role::Admin {
            return Err(Error::not_found("token"));
        }
        self.backends.store.delete_token(id).await?;
        self.audit(caller, "token.revoke", id, serde_json::json!({}))
            .await;
        Ok(())
    }
}
