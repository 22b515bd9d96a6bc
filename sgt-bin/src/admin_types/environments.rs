//! Environments, their config and enroll secrets.

use serde::{Deserialize, Serialize};

use serde_json::Value;
use sgt_core::store::EnvironmentSettings;

use sgt_core::types::{EnvironmentName, UnixSeconds};

/// `POST /environments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    /// Name.
    pub name: String,
    /// Its osquery config document (default: the server's default config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// An environment as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentView {
    /// Name.
    pub name: EnvironmentName,
    /// Created.
    pub created_at: UnixSeconds,
    /// Config last replaced.
    pub config_updated_at: UnixSeconds,
    /// How the server treats its nodes.
    #[serde(default)]
    pub settings: EnvironmentSettings,
}

/// An environment's config with its version: the body and `ETag` of `GET …/config`, and
/// what `If-Match` names on `PUT …/config`.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedConfig {
    /// The osquery config document.
    pub config: Value,
    /// Its version: one more at each replacement.
    pub version: u64,
}

impl VersionedConfig {
    /// The `ETag` (and `If-Match`) header value of `version`: the number in quotes.
    pub fn etag(version: u64) -> String {
        format!("\"{version}\"")
    }

    /// The version an `ETag` names, if it is one of [`VersionedConfig::etag`]'s.
    pub fn version_of(etag: &str) -> Option<u64> {
        etag.trim()
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .and_then(|version| version.parse().ok())
    }
}

/// `POST /environments/{environment}/secrets` (the body may be left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// Days until it stops enrolling (default never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// An enroll secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretView {
    /// Handle for revoking.
    pub id: String,
    /// Its environment.
    pub environment: EnvironmentName,
    /// Created.
    pub created_at: UnixSeconds,
    /// Stops enrolling at.
    pub expires_at: Option<UnixSeconds>,
    /// Last enroll made with it.
    pub last_used_at: Option<UnixSeconds>,
    /// Enrolls made with it.
    pub use_count: u64,
}

/// A new enroll secret: its value is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSecretOutcome {
    /// The secret, for agents' `--enroll_secret_path` file.
    pub secret: String,
    /// The stored record.
    #[serde(flatten)]
    pub record: SecretView,
}

#[cfg(test)]
mod tests {
    use super::VersionedConfig;

    #[test]
    fn etags_name_versions() {
        assert_eq!(VersionedConfig::etag(7), "\"7\"");
        assert_eq!(VersionedConfig::version_of(" \"7\" "), Some(7));
        assert_eq!(VersionedConfig::version_of("7"), None);
        assert_eq!(VersionedConfig::version_of("W/\"7\""), None);
    }
}
