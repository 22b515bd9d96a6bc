//! Login, users and tokens.

use serde::{Deserialize, Serialize};

use sgt_core::store::{Role, TokenKind};
use sgt_core::types::{UnixSeconds, Username};

/// `POST /login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// What a successful login returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOutcome {
    /// The bearer token (shown once).
    pub token: String,
    /// When it stops working.
    pub expires_at: UnixSeconds,
    /// The user.
    pub username: Username,
    /// Their role.
    pub role: Role,
}

/// Who is calling, as proven by their bearer token (`GET /me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The user.
    pub username: Username,
    /// Their role.
    pub role: Role,
    /// The id of the token the call came with.
    pub token_id: String,
}

/// `POST /users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Password (at least 12 characters).
    pub password: String,
}

/// `PATCH /users/{username}`: what to change; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new role (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The current password, needed to change one's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// A user as listed: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Created.
    pub created_at: UnixSeconds,
}

/// `GET /tokens?all=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenListParams {
    /// Everyone's tokens, not only the caller's (admins only).
    #[serde(default)]
    pub all: bool,
}

/// `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Label.
    pub name: String,
    /// Whose token it is (admins only; default the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Days until it stops working (default never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// What creating an API token returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTokenOutcome {
    /// The bearer token itself: shown this once, stored only as a hash.
    pub token: String,
    /// The stored record.
    #[serde(flatten)]
    pub record: TokenView,
}

/// A token as listed: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Handle for revoking.
    pub id: String,
    /// Owner.
    pub username: Username,
    /// `session` or `api`.
    pub kind: TokenKind,
    /// Label.
    pub name: String,
    /// Created.
    pub created_at: UnixSeconds,
    /// Expires.
    pub expires_at: Option<UnixSeconds>,
}
