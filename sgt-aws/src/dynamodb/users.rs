//! Admin users (the `users` table) and their bearer tokens (`tokens`, keyed by the token's
//! hash; a `lookups` item maps each token id to its hash).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use sgt_core::store::{ApiToken, Role, TokenKind, User, UserStore};
use sgt_core::types::Username;
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::tables::TTL_ATTRIBUTE;
use super::writes::{build_delete, build_put, delete, put, still_admin};
use super::{attrs, created_key, failed_condition_at, names, unless_condition_failed, DynamoStore};

fn user_key(username: &str) -> Item {
    attrs([("username", s(username))])
}

fn token_id_lookup(id: &str) -> Item {
    attrs([("lookup", s(format!("token-id/{id}")))])
}

fn user_item(user: &User) -> Item {
    attrs([
        ("username", s(user.username.as_str())),
        ("id", s(&user.id)),
        ("kind", s("user")),
        ("role", s(user.role.as_str())),
        ("password_hash", s(&user.password_hash)),
        ("created_at", n(user.created_at)),
    ])
}

fn user_from_item(stored: &Item) -> Result<User> {
    Ok(User {
        // Users stored before ids existed have none.
        id: id_attribute(stored, "id"),
        username: item::parsed(stored, "username", Username::parse)?,
        role: Role::parse(item::string(stored, "role")?).ok_or_else(|| item::corrupt("role"))?,
        password_hash: item::string(stored, "password_hash")?.to_owned(),
        created_at: item::number(stored, "created_at")?,
    })
}

/// An id attribute; items stored before ids existed have none and read as "".
fn id_attribute(stored: &Item, name: &str) -> String {
    item::optional_string(stored, name)
        .unwrap_or_default()
        .to_owned()
}

/// How many times a demotion or deletion of an admin re-reads and tries again when the
/// users it checked against changed under it.
const ADMIN_CHANGE_ATTEMPTS: usize = 8;

fn token_from_item(stored: &Item) -> Result<ApiToken> {
    Ok(ApiToken {
        id: item::string(stored, "id")?.to_owned(),
        username: item::parsed(stored, "username", Username::parse)?,
        user_id: id_attribute(stored, "user_id"),
        kind: TokenKind::parse(item::string(stored, "token_kind")?)
            .ok_or_else(|| item::corrupt("token kind"))?,
        name: item::string(stored, "name")?.to_owned(),
        token_hash: item::string(stored, "token_hash")?.to_owned(),
        created_at: item::number(stored, "created_at")?,
        expires_at: item::optional_number(stored, "expires_at")?,
    })
}

impl DynamoStore {
    /// Writes `write` (a put or delete of the user `username`, leaving it with role `role`)
    /// if the user still has the id `id` (when given) and the role it was read with. Taking
    /// the admin role from an admin also needs another admin: the write goes in one
    /// transaction with a check that some other admin still is one, so two admins demoting
    /// each other at once cannot both succeed.
    async fn change_user(
        &self,
        username: &Username,
        id: Option<&str>,
        role: Role,
        write: impl Fn(&str, Item) -> Result<TransactWriteItem>,
    ) -> Result<()> {
        for _ in 0..ADMIN_CHANGE_ATTEMPTS {
            let current = self
                .get_item(&self.tables.users, user_key(username.as_str()), true)
                .await?
                .ok_or_else(|| Error::not_found("user"))?;
            let current = user_from_item(&current)?;
            if id.is_some_and(|id| id != current.id) {
                return Err(Error::not_found("user"));
            }
            let condition = "attribute_exists(#username) AND #role = :role";
            let values = attrs([(":role", s(current.role.as_str()))]);
            let mut writes = vec![write(condition, values)?];
            let leaves_admin = current.role == Role::Admin && role != Role::Admin;
            let witnesses: Vec<User> = if leaves_admin {
                self.list_users()
                    .await?
                    .into_iter()
                    .filter(|u| u.role == Role::Admin && &u.username != username)
                    .collect()
            } else {
                Vec::new()
            };
            if leaves_admin && witnesses.is_empty() {
                return Err(Error::last_admin());
            }
            // Without a witness the list has one pass; with them, one try per witness.
            let tries = witnesses.len().max(1);
            for attempt in 0..tries {
                writes.truncate(1);
                if let Some(witness) = witnesses.get(attempt) {
                    writes.push(still_admin(&self.tables.users, &witness.username)?);
                }
                match self.transact("user", writes.clone()).await? {
                    Ok(()) => return Ok(()),
                    // The user changed since it was read: read it again.
                    Err(reasons) if failed_condition_at(&reasons, 0) => break,
                    // This witness is no longer an admin: try the next.
                    Err(reasons) if failed_condition_at(&reasons, 1) => {
                        if attempt + 1 == tries {
                            return Err(Error::last_admin());
                        }
                    }
                    Err(reasons) => {
                        return Err(Error::unavailable(format!(
                            "dynamodb: the user change was cancelled ({}); try again",
                            reasons.join(", ")
                        )))
                    }
                }
            }
        }
        Err(Error::unavailable(
            "dynamodb: the user kept changing; try again",
        ))
    }

    async fn tokens_by(&self, username: Option<&Username>) -> Result<Vec<Item>> {
        let (index, condition, partition) = match username {
            Some(user) => ("by-user", "#username = :partition", user.as_str()),
            None => ("all-by-created", "#kind = :partition", "token"),
        };
        let query = self
            .client
            .query()
            .table_name(&self.tables.tokens)
            .index_name(index)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .expression_attribute_values(":partition", s(partition));
        self.query_all(query, "token").await
    }

    /// Deletes a token and its id lookup; false if it was not there.
    async fn delete_token_item(&self, id: &str, token_hash: &str) -> Result<bool> {
        let writes = vec![
            delete(build_delete(
                &self.tables.tokens,
                attrs([("token_hash", s(token_hash))]),
                Some("attribute_exists(#token_hash)"),
                None,
            )?),
            delete(build_delete(
                &self.tables.lookups,
                token_id_lookup(id),
                None,
                None,
            )?),
        ];
        Ok(self.transact("token", writes).await?.is_ok())
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.users)
            .set_item(Some(user_item(user)))
            .condition_expression("attribute_not_exists(#username)")
            .set_expression_attribute_names(names(&["#username"]))
            .send()
            .await;
        unless_condition_failed(result, "user")?
            .map(|_| ())
            .ok_or_else(|| Error::already_exists("user"))
    }

    async fn user(&self, username: &Username) -> Result<User> {
        let stored = self
            .get_item(&self.tables.users, user_key(username.as_str()), true)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        user_from_item(&stored)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.users)
            .index_name("all-by-name")
            .key_condition_expression("#kind = :kind")
            .set_expression_attribute_names(names(&["#kind"]))
            .expression_attribute_values(":kind", s("user"));
        self.query_all(query, "user")
            .await?
            .iter()
            .map(user_from_item)
            .collect()
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let item = user_item(user);
        self.change_user(
            &user.username,
            Some(&user.id),
            user.role,
            |condition, values| {
                Ok(put(build_put(
                    &self.tables.users,
                    item.clone(),
                    Some(condition),
                    Some(values),
                )?))
            },
        )
        .await
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        self.change_user(username, None, Role::Viewer, |condition, values| {
            Ok(delete(build_delete(
                &self.tables.users,
                user_key(username.as_str()),
                Some(condition),
                Some(values),
            )?))
        })
        .await?;
        // A token the index does not show yet is refused anyway: authentication also needs
        // the user to exist.
        for token in self.tokens_by(Some(username)).await? {
            self.delete_token_item(
                item::string(&token, "id")?,
                item::string(&token, "token_hash")?,
            )
            .await?;
        }
        Ok(())
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        let mut stored = attrs([
            ("token_hash", s(&token.token_hash)),
            ("kind", s("token")),
            ("id", s(&token.id)),
            ("username", s(token.username.as_str())),
            ("user_id", s(&token.user_id)),
            ("token_kind", s(token.kind.as_str())),
            ("name", s(&token.name)),
            ("created_at", n(token.created_at)),
            ("created_key", s(created_key(token.created_at, &token.id))),
        ]);
        let mut lookup = token_id_lookup(&token.id);
        lookup.insert("token_hash".into(), s(&token.token_hash));
        if let Some(expires_at) = token.expires_at {
            stored.insert("expires_at".into(), n(expires_at));
            // TTL deletes expired tokens some time after they stopped working.
            stored.insert(TTL_ATTRIBUTE.into(), n(expires_at));
            lookup.insert(TTL_ATTRIBUTE.into(), n(expires_at));
        }
        let writes = vec![
            put(build_put(
                &self.tables.tokens,
                stored,
                Some("attribute_not_exists(#token_hash)"),
                None,
            )?),
            put(build_put(
                &self.tables.lookups,
                lookup,
                Some("attribute_not_exists(#lookup)"),
                None,
            )?),
        ];
        match self.transact("token", writes).await? {
            Ok(()) => Ok(()),
            Err(reasons)
                if reasons.is_empty()
                    || failed_condition_at(&reasons, 0)
                    || failed_condition_at(&reasons, 1) =>
            {
                Err(Error::already_exists("token"))
            }
            Err(reasons) => Err(Error::unavailable(format!(
                "dynamodb: token creation was cancelled ({}); try again",
                reasons.join(", ")
            ))),
        }
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
        let stored = self
            .get_item(
                &self.tables.tokens,
                attrs([("token_hash", s(token_hash))]),
                true,
            )
            .await?
            .ok_or_else(|| Error::not_found("token"))?;
        token_from_item(&stored)
    }

    async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>> {
        self.tokens_by(username)
            .await?
            .iter()
            .map(token_from_item)
            .collect()
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        let lookup = self
            .get_item(&self.tables.lookups, token_id_lookup(id), true)
            .await?
            .ok_or_else(|| Error::not_found("token"))?;
        if self
            .delete_token_item(id, item::string(&lookup, "token_hash")?)
            .await?
        {
            Ok(())
        } else {
            Err(Error::not_found("token"))
        }
    }
}
