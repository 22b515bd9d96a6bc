use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{UnixSeconds, Username};

/// What an admin API user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything, change nothing.
    Viewer,
    /// Also run live queries and carves, delete nodes, change configs and packs.
    Operator,
    /// Everything: also environments, enroll secrets, users and other users' tokens.
    Admin,
}

impl Role {
    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`] output.
    pub fn parse(value: &str) -> Option<Role> {
        Some(match value {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// An admin API user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique among every user there ever was ([`User::new_id`]): a later user of the same
    /// name has another id, so tokens of a deleted user never become theirs. Empty for
    /// users stored before ids existed.
    pub id: String,
    /// The login name.
    pub username: Username,
    /// What the user may do.
    pub role: Role,
    /// The argon2id hash of the password, in PHC string format.
    pub password_hash: String,
    /// When the user was created.
    pub created_at: UnixSeconds,
}

impl User {
    /// A fresh user id: 128 random bits as hex.
    pub fn new_id() -> String {
        crate::types::random_hex(16)
    }
}

/// How a bearer token came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From `POST /api/v1/login`; always expires.
    Session,
    /// A long-lived token for automation.
    Api,
}

impl TokenKind {
    /// `session` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }

    /// Parses [`TokenKind::as_str`] output.
    pub fn parse(value: &str) -> Option<TokenKind> {
        Some(match value {
            "session" => TokenKind::Session,
            "api" => TokenKind::Api,
            _ => return None,
        })
    }
}

/// A bearer token as stored: only its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// A non-secret handle for listing and revoking.
    pub id: String,
    /// Whose token it is; it carries that user's role.
    pub username: Username,
    /// The [`User::id`] of its user: the token works only while the user of `username` has
    /// this id.
    pub user_id: String,
    /// Session or API token.
    pub kind: TokenKind,
    /// A label chosen by its creator.
    pub name: String,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// After this time it is refused.
    pub expires_at: Option<UnixSeconds>,
}

/// Admin API users and their bearer tokens.
///
/// # Contract
/// - User names and token ids are unique; token hashes identify at most one token.
/// - Deleting a user deletes its tokens; a deleted token is not found at once.
/// - There is always an admin once there was one: demoting or deleting the last admin is
///   refused, and the check and the write are one atomic step, so concurrent demotions of
///   two admins cannot both succeed.
///
/// # Errors
/// `AlreadyExists` for a duplicate name or id; `NotFound` for an unknown one; `Conflict`
/// for a change that would leave no admin; `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a user.
    async fn create_user(&self, user: &User) -> Result<()>;

    /// The user called `username`.
    async fn user(&self, username: &Username) -> Result<User>;

    /// Every user, ordered by name.
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Replaces the role and password hash of the user with `user`'s name and id (NotFound
    /// when there is none, also when the name now belongs to a user with another id).
    async fn update_user(&self, user: &User) -> Result<()>;

    /// Deletes the user and every token of theirs.
    async fn delete_user(&self, username: &Username) -> Result<()>;

    /// Stores a token.
    async fn create_token(&self, token: &ApiToken) -> Result<()>;

    /// The token whose hash is `token_hash`.
    async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken>;

    /// Tokens ordered by creation time, only `username`'s when given.
    async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>>;

    /// Deletes the token `id`: it stops working at once.
    async fn delete_token(&self, id: &str) -> Result<()>;
}
