//! Admin API users.

use super::auth::{hash_password, password_matches};
use super::AdminService;
use crate::admin_types::{Caller, UserView};
use sgt_core::error::{Error, Result};
use sgt_core::store::{Role, User};
use sgt_core::types::{now_unix, Username};

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            username: u.username,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

impl AdminService {
    /// Whether any user exists.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn has_users(&self) -> Result<bool> {
        Ok(!self.backends.store.list_users().await?.is_empty())
    }

    /// Creates the first user, `username` with the admin role, unless any user exists.
    /// Returns true if it did. For `sgt serve`'s first start.
    ///
    /// # Errors
    /// Backend errors; `InvalidInput` for a short password.
    pub async fn ensure_first_admin(&self, username: &Username, password: &str) -> Result<bool> {
        if !self.backends.store.list_users().await?.is_empty() {
            return Ok(false);
        }
        self.backends
            .store
            .create_user(&User {
                id: User::new_id(),
                username: username.clone(),
                role: Role::Admin,
                password_hash: hash_password(password)?,
                created_at: now_unix(),
            })
            .await?;
        Ok(true)
    }

    /// Every user.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<UserView>> {
        caller.require(Role::Viewer)?;
        Ok(self
            .backends
            .store
            .list_users()
            .await?
            .into_iter()
            .map(UserView::from)
            .collect())
    }

    /// One user.
    ///
    /// # Errors
    /// `NotFound`; backend errors.
    pub async fn user(&self, caller: &Caller, username: &str) -> Result<UserView> {
        caller.require(Role::Viewer)?;
        let name = Username::parse(username).map_err(|_| Error::not_found("user"))?;
        Ok(self.backends.store.user(&name).await?.into())
    }

    /// Creates a user (admins only).
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for a bad name or short password; `AlreadyExists`.
    pub async fn create_user(
        &self,
        caller: &Caller,
        username: &str,
        role: Role,
        password: &str,
    ) -> Result<UserView> {
        caller.require(Role::Admin)?;
        let user = User {
            id: User::new_id(),
            username: Username::parse(username)?,
            role,
            password_hash: hash_password(password)?,
            created_at: now_unix(),
        };
        self.backends.store.create_user(&user).await?;
        self.audit(
            caller,
            "user.create",
            user.username.as_str(),
            serde_json::json!({"role": role}),
        )
        .await;
        Ok(user.into())
    }

    /// Changes a user's role (admins only) or password (admins, or the user themself). A
    /// user changing their own password must give the current one. A password change ends
    /// the user's sessions, except the caller's own.
    ///
    /// # Errors
    /// `Forbidden`, also for a wrong current password; `NotFound`; `InvalidInput` for a
    /// short password or a missing current password; `Conflict` when it would leave no admin.
    pub async fn update_user(
        &self,
        caller: &Caller,
        username: &str,
        role: Option<Role>,
        password: Option<&str>,
        current_password: Option<&str>,
    ) -> Result<UserView> {
        let name = Username::parse(username).map_err(|_| Error::not_found("user"))?;
        let own_password_only = name == caller.username && role.is_none();
        if !own_password_only {
            caller.require(Role::Admin)?;
        }
        let mut user = self.backends.store.user(&name).await?;
        if let Some(role) = role {
            // The store refuses, atomically, to demote the last admin.
            user.role = role;
        }
        if let Some(password) = password {
            if name == caller.username {
                let current = current_password.ok_or_else(|| {
                    Error::invalid_input("current_password is required to change your own password")
                })?;
                // A stolen session must not be a way to guess the password unlimited.
                self.admit_login(name.as_str(), None)?;
                if !password_matches(current, &user.password_hash).await? {
                    return Err(Error::forbidden("the current password is wrong"));
                }
            }
            user.password_hash = hash_password(password)?;
        }
        self.backends.store.update_user(&user).await?;
        if password.is_some() {
            // Whoever held another session of this user must sign in with the new password.
            self.end_sessions(&name, Some(&caller.token_id)).await?;
        }
        self.audit(
            caller,
            "user.update",
            name.as_str(),
            serde_json::json!({"role": role, "password_changed": password.is_some()}),
        )
        .await;
        Ok(user.into())
    }

    /// Deletes a user and their tokens (admins only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `Conflict` when it is the last admin.
    pub async fn delete_user(&self, caller: &Caller, username: &str) -> Result<()> {
        caller.require(Role::Admin)?;
        let name = Username::parse(username).map_err(|_| Error::not_found("user"))?;
        // The store refuses, atomically, to delete the last admin.
        self.backends.store.delete_user(&name).await?;
        self.audit(caller, "user.delete", name.as_str(), serde_json::json!({}))
            .await;
        Ok(())
    }
}
