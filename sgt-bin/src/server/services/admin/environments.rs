//! Environments, their osquery config and packs, and their enroll secrets.

use serde_json::{Map, Value};

use super::AdminService;
use crate::admin_types::{Caller, EnvironmentView, NewSecretOutcome, SecretView, VersionedConfig};
use crate::server::services::config_doc::default_config;
use crate::server::services::config_doc::{validate_config, validate_pack};
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::secrets::EnrollSecret;
use sgt_core::store::{Environment, EnvironmentSettings, Role};
use sgt_core::types::{now_unix, random_hex, EnvironmentName, SecretValue};

impl From<Environment> for EnvironmentView {
    fn from(e: Environment) -> Self {
        EnvironmentView {
            name: e.name,
            created_at: e.created_at,
            config_updated_at: e.config_updated_at,
            settings: e.settings,
        }
    }
}

/// How many times a pack edit is retried when another edit of the same config wins the race.
const PACK_EDIT_ATTEMPTS: u32 = 16;

fn env_name(name: &str) -> Result<EnvironmentName> {
    EnvironmentName::parse(name).map_err(|_| Error::not_found("environment"))
}

impl AdminService {
    /// Every environment.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_environments(&self, caller: &Caller) -> Result<Vec<EnvironmentView>> {
        caller.require(Role::Viewer)?;
        Ok(self
            .backends
            .store
            .list_environments()
            .await?
            .into_iter()
            .map(EnvironmentView::from)
            .collect())
    }

    /// One environment.
    ///
    /// # Errors
    /// `NotFound`; backend errors.
    pub async fn environment(&self, caller: &Caller, name: &str) -> Result<EnvironmentView> {
        caller.require(Role::Viewer)?;
        Ok(self
            .backends
            .store
            .environment(&env_name(name)?)
            .await?
            .into())
    }

    /// Creates an environment (admins only) with `config`, or the default config.
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for a bad name or config; `AlreadyExists`.
    pub async fn create_environment(
        &self,
        caller: &Caller,
        name: &str,
        config: Option<Value>,
    ) -> Result<EnvironmentView> {
        caller.require(Role::Admin)?;
        let name = EnvironmentName::parse(name)?;
        let config = config.unwrap_or_else(default_config);
        validate_config(&config)?;
        self.check_pack_labels(&config).await?;
        let now = now_unix();
        let environment = Environment {
            name: name.clone(),
            config,
            created_at: now,
            config_updated_at: now,
            config_version: 1,
            settings: Default::default(),
        };
        self.backends.store.create_environment(&environment).await?;
        self.audit(caller, "environment.create", name.as_str(), Value::Null)
            .await;
        Ok(environment.into())
    }

    /// Deletes an environment and revokes its enroll secrets (admins only). Its nodes stay
    /// enrolled until deleted; they get no config.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`.
    pub async fn delete_environment(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require(Role::Admin)?;
        let name = env_name(name)?;
        self.backends.store.delete_environment(&name).await?;
        self.forget_environment(&name);
        for secret in self.backends.secrets.list_enroll_secrets().await? {
            if secret.environment == name {
                self.backends
                    .secrets
                    .revoke_enroll_secret(&secret.id)
                    .await?;
            }
        }
        self.audit(caller, "environment.delete", name.as_str(), Value::Null)
            .await;
        Ok(())
    }

    /// Replaces how the server treats the environment's nodes (admins only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `InvalidInput` for a node expiry of 0 or over 3650 days.
    pub async fn put_environment_settings(
        &self,
        caller: &Caller,
        name: &str,
        settings: EnvironmentSettings,
    ) -> Result<EnvironmentView> {
        caller.require(Role::Admin)?;
        let name = env_name(name)?;
        if settings
            .node_expiry_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            return Err(Error::invalid_input(
                "node_expiry_days must be 1 to 3650 (or absent: never)",
            ));
        }
        self.backends
            .store
            .put_environment_settings(&name, &settings)
            .await?;
        self.audit(
            caller,
            "environment.settings",
            name.as_str(),
            serde_json::to_value(&settings).unwrap_or_default(),
        )
        .await;
        Ok(self.backends.store.environment(&name).await?.into())
    }

    /// The environment's osquery config document.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn config(&self, caller: &Caller, name: &str) -> Result<Value> {
        caller.require(Role::Viewer)?;
        Ok(self
            .backends
            .store
            .environment(&env_name(name)?)
            .await?
            .config)
    }

    /// The environment's osquery config document with its version.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn versioned_config(&self, caller: &Caller, name: &str) -> Result<VersionedConfig> {
        caller.require(Role::Viewer)?;
        let environment = self.backends.store.environment(&env_name(name)?).await?;
        Ok(VersionedConfig {
            config: environment.config,
            version: environment.config_version,
        })
    }

    /// Replaces the environment's config (operators and admins) if its version is still
    /// `expected_version` (whatever it is when `None`); returns what was written with its new
    /// version. Agents get it at their next config poll.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `InvalidInput` from [`validate_config`]; `Conflict` when the
    /// config is no longer at `expected_version`.
    pub async fn put_config(
        &self,
        caller: &Caller,
        name: &str,
        config: Value,
        expected_version: Option<u64>,
    ) -> Result<VersionedConfig> {
        caller.require(Role::Operator)?;
        let name = env_name(name)?;
        validate_config(&config)?;
        self.check_pack_labels(&config).await?;
        let version = self
            .backends
            .store
            .put_config(&name, &config, now_unix(), expected_version)
            .await?;
        self.forget_environment(&name);
        self.audit(
            caller,
            "config.replace",
            name.as_str(),
            serde_json::json!({"version": version}),
        )
        .await;
        Ok(VersionedConfig { config, version })
    }

    /// The environment's packs (the config's `packs` object).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn packs(&self, caller: &Caller, name: &str) -> Result<Map<String, Value>> {
        let config = self.config(caller, name).await?;
        Ok(config
            .get("packs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// One pack.
    ///
    /// # Errors
    /// `NotFound` for the environment or the pack.
    pub async fn pack(&self, caller: &Caller, name: &str, pack: &str) -> Result<Value> {
        self.packs(caller, name)
            .await?
            .remove(pack)
            .ok_or_else(|| Error::not_found("pack"))
    }

    /// Adds or replaces a pack (operators and admins); returns the pack as written. Edits of
    /// different packs of one environment never undo each other, however many run at once.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `InvalidInput` for a bad pack or a config grown too large;
    /// `Conflict` when other edits kept winning the race.
    pub async fn put_pack(
        &self,
        caller: &Caller,
        name: &str,
        pack_name: &str,
        pack: Value,
    ) -> Result<Value> {
        caller.require(Role::Operator)?;
        validate_pack(pack_name, &pack)?;
        self.edit_packs(caller, name, "pack.put", pack_name, |packs| {
            packs.insert(pack_name.to_owned(), pack.clone());
            Ok(())
        })
        .await?;
        Ok(pack)
    }

    /// Removes a pack (operators and admins).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound` for the environment or the pack; `Conflict` when other edits
    /// kept winning the race.
    pub async fn delete_pack(&self, caller: &Caller, name: &str, pack_name: &str) -> Result<()> {
        caller.require(Role::Operator)?;
        self.edit_packs(caller, name, "pack.delete", pack_name, |packs| {
            packs
                .remove(pack_name)
                .map(|_| ())
                .ok_or_else(|| Error::not_found("pack"))
        })
        .await
    }

    /// Applies `edit` to the environment's packs: reads the config, edits it and writes it
    /// back only if no other write came in between, else starts again from the new config.
    async fn edit_packs(
        &self,
        caller: &Caller,
        name: &str,
        action: &str,
        pack_name: &str,
        edit: impl Fn(&mut Map<String, Value>) -> Result<()>,
    ) -> Result<()> {
        let name = env_name(name)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let environment = self.backends.store.environment(&name).await?;
            let mut config = environment.config;
            let root = config
                .as_object_mut()
                .ok_or_else(|| Error::invalid_input("stored config is not an object"))?;
            let packs = root
                .entry("packs")
                .or_insert_with(|| Value::Object(Map::new()));
            let packs = packs
                .as_object_mut()
                .ok_or_else(|| Error::invalid_input("config's packs is not an object"))?;
            edit(packs)?;
            validate_config(&config)?;
            self.check_pack_labels(&config).await?;
            match self
                .backends
                .store
                .put_config(&name, &config, now_unix(), Some(environment.config_version))
                .await
            {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Conflict && attempt < PACK_EDIT_ATTEMPTS => {
                    // Another edit won; spread the retries so they do not collide again.
                    let pause = rand::random::<u64>() % (5 * u64::from(attempt)) + 1;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.forget_environment(&name);
        self.audit(caller, action, &format!("{name}/{pack_name}"), Value::Null)
            .await;
        Ok(())
    }

    /// The environment's enroll secrets with their usage; never their values.
    ///
    /// # Errors
    /// `NotFound` for the environment.
    pub async fn list_secrets(&self, caller: &Caller, name: &str) -> Result<Vec<SecretView>> {
        caller.require(Role::Viewer)?;
        let name = env_name(name)?;
        self.backends.store.environment(&name).await?;
        let usage = self.backends.store.secret_usage().await?;
        let mut secrets: Vec<SecretView> = self
            .backends
            .secrets
            .list_enroll_secrets()
            .await?
            .into_iter()
            .filter(|s| s.environment == name)
            .map(|s| {
                let used = usage.iter().find(|u| u.secret_id == s.id);
                SecretView {
                    id: s.id,
                    environment: s.environment,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    last_used_at: used.map(|u| u.last_used_at),
                    use_count: used.map(|u| u.use_count).unwrap_or(0),
                }
            })
            .collect();
        secrets.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(secrets)
    }

    /// Adds an enroll secret to the environment (admins only). Earlier secrets stay valid,
    /// so agents can be moved to the new one before the old is revoked.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `InvalidInput` for a zero lifetime.
    pub async fn create_secret(
        &self,
        caller: &Caller,
        name: &str,
        expires_in_days: Option<u32>,
    ) -> Result<NewSecretOutcome> {
        caller.require(Role::Admin)?;
        let name = env_name(name)?;
        self.backends.store.environment(&name).await?;
        if expires_in_days == Some(0) {
            return Err(Error::invalid_input("expires_in_days must be at least 1"));
        }
        let now = now_unix();
        let secret = EnrollSecret {
            id: random_hex(8),
            environment: name.clone(),
            value: SecretValue::generate(),
            created_at: now,
            expires_at: expires_in_days.map(|d| now + i64::from(d) * 86_400),
        };
        self.backends.secrets.add_enroll_secret(&secret).await?;
        self.audit(
            caller,
            "secret.create",
            &format!("{name}/{}", secret.id),
            serde_json::json!({"expires_at": secret.expires_at}),
        )
        .await;
        Ok(NewSecretOutcome {
            secret: secret.value.expose().to_owned(),
            record: SecretView {
                id: secret.id,
                environment: secret.environment,
                created_at: secret.created_at,
                expires_at: secret.expires_at,
                last_used_at: None,
                use_count: 0,
            },
        })
    }

    /// Revokes an enroll secret (admins only): no new enrolls with it; nodes that enrolled
    /// with it keep working.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound` for an unknown secret or one of another environment.
    pub async fn revoke_secret(&self, caller: &Caller, name: &str, id: &str) -> Result<()> {
        caller.require(Role::Admin)?;
        let name = env_name(name)?;
        let belongs = self
            .backends
            .secrets
            .list_enroll_secrets()
            .await?
            .iter()
            .any(|s| s.id == id && s.environment == name);
        if !belongs {
            return Err(Error::not_found("enroll secret"));
        }
        self.backends.secrets.revoke_enroll_secret(id).await?;
        self.audit(
            caller,
            "secret.revoke",
            &format!("{name}/{id}"),
            Value::Null,
        )
        .await;
        Ok(())
    }
}
