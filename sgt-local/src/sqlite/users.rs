//! Admin users and their bearer tokens; the last-admin rule in one statement.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, SqliteStore};

fn user_from_row(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.get("id"),
        username: Username::parse(row.get::<String, _>("username"))
            .map_err(|_| corrupt("user name"))?,
        role: Role::parse(row.get::<&str, _>("role")).ok_or_else(|| corrupt("role"))?,
        password_hash: row.get("password_hash"),
        created_at: row.get("created_at"),
    })
}

fn token_from_row(row: &SqliteRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.get("id"),
        username: Username::parse(row.get::<String, _>("username"))
            .map_err(|_| corrupt("user name"))?,
        user_id: row.get("user_id"),
        kind: TokenKind::parse(row.get::<&str, _>("kind")).ok_or_else(|| corrupt("token kind"))?,
        name: row.get("name"),
        token_hash: row.get("token_hash"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (username, role, password_hash, created_at, id) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.username.as_str())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(&user.id)
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        Ok(())
    }

    async fn user(&self, username: &Username) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("user"))?
            .ok_or_else(|| Error::not_found("user"))?;
        user_from_row(&row)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("user"))?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        // One statement, so the last-admin check and the write are atomic (SQLite takes the
        // write lock before the statement reads).
        let updated = sqlx::query(
            "UPDATE users SET role = ?1, password_hash = ?2 \
             WHERE username = ?3 AND id = ?4 \
             AND (?1 = 'admin' OR role != 'admin' \
                  OR EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND username != ?3))",
        )
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.username.as_str())
        .bind(&user.id)
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        if updated.rows_affected() == 0 {
            let stored = self.user(&user.username).await?;
            if stored.id != user.id {
                return Err(Error::not_found("user"));
            }
            return Err(Error::last_admin());
        }
        Ok(())
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        let deleted = sqlx::query(
            "DELETE FROM users WHERE username = ?1 \
             AND (role != 'admin' \
                  OR EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND username != ?1))",
        )
        .bind(username.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        if deleted.rows_affected() == 0 {
            self.user(username).await?;
            return Err(Error::last_admin());
        }
        Ok(())
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, username, kind, name, token_hash, created_at, expires_at, user_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(token.username.as_str())
        .bind(token.kind.as_str())
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(&token.user_id)
        .execute(&self.pool)
        .await
        .map_err(db_error("token"))?;
        Ok(())
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
        let row = sqlx::query("SELECT * FROM tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("token"))?
            .ok_or_else(|| Error::not_found("token"))?;
        token_from_row(&row)
    }

    async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE ?1 IS NULL OR username = ?1 ORDER BY created_at, id",
        )
        .bind(username.map(|u| u.as_str()))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("token"))?;
        rows.iter().map(token_from_row).collect()
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error("token"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("token"));
        }
        Ok(())
    }
}
