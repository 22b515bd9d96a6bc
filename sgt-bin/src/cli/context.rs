//! Saved contexts: what `sgt login` remembers (the server's URL, the CA it trusts and the
//! session token) so later commands need no `SGT_URL` or `SGT_TOKEN`, and `sgt context` to
//! list, switch and forget them.
//!
//! Kept in `contexts.json` in `SGT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sgt`, else
//! `~/.config/sgt`, readable by its owner only. A context's token and CA are used only for
//! its own URL: a command aimed elsewhere (`--url`, `SGT_URL`) never sends them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use sgt_core::types::UnixSeconds;

/// One saved server and session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedContext {
    /// The server's base URL.
    pub(super) url: String,
    /// The CA certificate (PEM) the server's certificate was trusted by, if not the public
    /// roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ca_pem: Option<String>,
    /// The session token.
    pub(super) token: String,
    /// Who logged in.
    pub(super) username: String,
    /// When the token stops working.
    pub(super) expires_at: UnixSeconds,
}

/// Every saved context and which is current.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Contexts {
    /// The context commands use when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) current: Option<String>,
    /// By name.
    #[serde(default)]
    pub(super) contexts: BTreeMap<String, SavedContext>,
}

/// The folder `contexts.json` lives in.
fn config_dir() -> anyhow::Result<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = from_env("SGT_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = from_env("XDG_CONFIG_HOME") {
        return Ok(dir.join("sgt"));
    }
    match from_env("HOME") {
        Some(home) => Ok(home.join(".config").join("sgt")),
        None => bail!("no home folder to keep contexts in: set SGT_CONFIG_DIR"),
    }
}

impl Contexts {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("contexts.json"))
    }

    /// The saved contexts; none when nothing was saved yet.
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub(super) fn load() -> anyhow::Result<Contexts> {
        // No home folder: nothing can have been saved.
        let Ok(path) = Self::path() else {
            return Ok(Contexts::default());
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a contexts file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contexts::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file whole (a reader sees the old or the new one), readable by its owner
    /// only: it holds session tokens.
    ///
    /// # Errors
    /// When the folder or file cannot be written.
    pub(super) fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::bootstrap::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // A temporary file in the same folder is created 0600, then renamed over the old.
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.as_file().sync_all()?;
        file.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The context named `name`, else the current one, if any.
    ///
    /// # Errors
    /// A named context that is not saved.
    pub(super) fn chosen(
        &self,
        name: Option<&str>,
    ) -> anyhow::Result<Option<(&str, &SavedContext)>> {
        match name {
            Some(name) => match self.contexts.get_key_value(name) {
                Some((name, context)) => Ok(Some((name.as_str(), context))),
                None => bail!("no context called {name:?} (see `sgt context list`)"),
            },
            None => Ok(self
                .current
                .as_deref()
                .and_then(|c| self.contexts.get_key_value(c))
                .map(|(name, context)| (name.as_str(), context))),
        }
    }
}

/// A context's default name: the URL's host and port, e.g. `sgt.example.com:8443`.
pub(super) fn name_for(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .to_owned()
}

/// `sgt context …`
#[derive(Subcommand, Debug)]
pub enum ContextAction {
    /// List saved contexts; the current one is marked.
    List,
    /// Make a saved context the current one.
    Use {
        /// Its name.
        name: String,
    },
    /// Forget a saved context (its token stays valid until it expires or is revoked).
    Delete {
        /// Its name.
        name: String,
    },
}

/// One row of `sgt context list`.
#[derive(Serialize)]
struct ContextRow<'a> {
    current: &'static str,
    name: &'a str,
    url: &'a str,
    username: &'a str,
    expires_at: UnixSeconds,
}

pub(super) fn run(action: Option<ContextAction>, json: bool) -> anyhow::Result<()> {
    let mut contexts = Contexts::load()?;
    match action.unwrap_or(ContextAction::List) {
        ContextAction::List => {
            let rows: Vec<ContextRow<'_>> = contexts
                .contexts
                .iter()
                .map(|(name, c)| ContextRow {
                    current: if contexts.current.as_deref() == Some(name) {
                        "*"
                    } else {
                        ""
                    },
                    name,
                    url: &c.url,
                    username: &c.username,
                    expires_at: c.expires_at,
                })
                .collect();
            let value = serde_json::to_value(&rows)?;
            if json {
                super::output::json(&value);
            } else {
                let items = value.as_array().cloned().unwrap_or_default();
                super::output::table(
                    &items,
                    &["current", "name", "url", "username", "expires_at"],
                );
            }
        }
        ContextAction::Use { name } => {
            if !contexts.contexts.contains_key(&name) {
                bail!("no context called {name:?} (see `sgt context list`)");
            }
            contexts.current = Some(name.clone());
            contexts.save()?;
            eprintln!("now using context {name}");
        }
        ContextAction::Delete { name } => {
            if contexts.contexts.remove(&name).is_none() {
                bail!("no context called {name:?}");
            }
            if contexts.current.as_deref() == Some(name.as_str()) {
                contexts.current = None;
            }
            contexts.save()?;
            eprintln!("context {name} deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::name_for;

    #[test]
    fn a_context_is_named_by_host_and_port() {
        assert_eq!(name_for("https://localhost:8443"), "localhost:8443");
        assert_eq!(name_for("https://sgt.example.com/"), "sgt.example.com");
        assert_eq!(name_for("https://u@h.example:9/x?y"), "h.example:9");
    }
}
