//! Validated identifiers: parsed once at the edge, so every backend sees the same limits.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Seconds since the Unix epoch, UTC.
pub type UnixSeconds = i64;

/// The current time in [`UnixSeconds`].
pub fn now_unix() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current time in unix milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `bytes` random bytes from the thread's CSPRNG (ChaCha, seeded by the OS), hex encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn check(value: &str, what: &str, max_len: usize, allowed: impl Fn(char) -> bool) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("{what} is empty")));
    }
    if value.len() > max_len {
        return Err(Error::invalid_input(format!(
            "{what} is longer than {max_len} bytes"
        )));
    }
    if !value.chars().all(allowed) {
        return Err(Error::invalid_input(format!(
            "{what} has a character that is not allowed"
        )));
    }
    Ok(())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

string_newtype!(
    /// The secret an agent presents on every request after enrolling.
    ///
    /// 1 to 256 bytes of `[A-Za-z0-9_-]`. Generated keys carry 256 bits from a CSPRNG. `Debug`
    /// never shows the value; compare with [`NodeKey::ct_eq`] where timing matters.
    NodeKey
);

impl NodeKey {
    /// Validates a key received from an agent.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "node key", 256, is_token_char)?;
        Ok(NodeKey(value))
    }

    /// A fresh random key (256 bits).
    pub fn generate() -> Self {
        NodeKey(random_hex(32))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &NodeKey) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

string_newtype!(
    /// The server's stable identifier of an enrolled node; not a secret.
    ///
    /// 1 to 64 bytes of `[A-Za-z0-9_-]`; generated ids are 128 random bits in hex.
    NodeId
);

impl NodeId {
    /// Validates a node id.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "node id", 64, is_token_char)?;
        Ok(NodeId(value))
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        NodeId(random_hex(16))
    }
}

string_newtype!(
    /// The identifier osquery reports for its host (`--host_identifier`): a hostname, a UUID, ...
    ///
    /// 1 to 512 bytes, no control characters.
    HostIdentifier
);

impl HostIdentifier {
    /// Validates a host identifier.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "host identifier", 512, |c| !c.is_control())?;
        Ok(HostIdentifier(value))
    }
}

string_newtype!(
    /// The name of an environment (e.g. `prod`, `dev`, `corp`): the unit of config and enroll secrets.
    ///
    /// 1 to 63 bytes of `[a-z0-9_-]`, starting with a letter or digit.
    EnvironmentName
);

impl EnvironmentName {
    /// Validates an environment name.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "environment name", 63, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        })?;
        if value.starts_with(['-', '_']) {
            return Err(Error::invalid_input(
                "environment name must start with a letter or digit",
            ));
        }
        Ok(EnvironmentName(value))
    }

    /// The environment that `sgt serve` creates on first start.
    pub fn default_name() -> Self {
        EnvironmentName("default".to_owned())
    }
}

string_newtype!(
    /// The id of a distributed (live) query, as sent to agents in `distributed/read`.
    ///
    /// 1 to 128 bytes of `[A-Za-z0-9_.:-]`.
    QueryId
);

impl QueryId {
    /// Validates a query id.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "query id", 128, |c| {
            is_token_char(c) || c == '.' || c == ':'
        })?;
        Ok(QueryId(value))
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        QueryId(random_hex(16))
    }
}

string_newtype!(
    /// The session id of a file carve, handed to the agent by `carve/start`.
    ///
    /// It is the only credential of `carve/continue` requests, so generated ids carry 128 random
    /// bits. 1 to 128 bytes of `[A-Za-z0-9_-]`; safe to use as a path segment.
    CarveSessionId
);

impl CarveSessionId {
    /// Validates a session id received from an agent.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "carve session id", 128, is_token_char)?;
        Ok(CarveSessionId(value))
    }

    /// A fresh random session id.
    pub fn generate() -> Self {
        CarveSessionId(random_hex(16))
    }
}

string_newtype!(
    /// The login name of an admin API user.
    ///
    /// 1 to 64 bytes of `[a-z0-9_.@-]`.
    Username
);

impl Username {
    /// Validates a user name.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "user name", 64, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '@' | '-')
        })?;
        Ok(Username(value))
    }
}

string_newtype!(
    /// The name of a saved query: what `sgt query run --saved NAME` and the admin API call it.
    ///
    /// 1 to 128 bytes of `[A-Za-z0-9_.-]`, starting with a letter or digit.
    SavedQueryName
);

impl SavedQueryName {
    /// Validates a saved query's name.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "saved query name", 128, |c| {
            is_token_char(c) || c == '.'
        })?;
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid_input(
                "saved query name must start with a letter or digit",
            ));
        }
        Ok(SavedQueryName(value))
    }
}

string_newtype!(
    /// The name of a label: what packs (`labels:`), campaigns and node lists aim at.
    ///
    /// 1 to 128 bytes of `[A-Za-z0-9_.-]`, starting with a letter or digit.
    LabelName
);

impl LabelName {
    /// Validates a label's name.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check(&value, "label name", 128, |c| is_token_char(c) || c == '.')?;
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid_input(
                "label name must start with a letter or digit",
            ));
        }
        Ok(LabelName(value))
    }
}

/// The platform name of osquery's platform bitmask (`platform_type` at enroll): `darwin`,
/// `linux`, `windows`, `freebsd`, or `""` when no known bit is set.
pub fn platform_name(platform_type: &str) -> &'static str {
    let mask: u64 = platform_type.trim().parse().unwrap_or(0);
    if mask & 0x10 != 0 {
        "darwin"
    } else if mask & 0x08 != 0 {
        "linux"
    } else if mask & 0x02 != 0 {
        "windows"
    } else if mask & 0x20 != 0 {
        "freebsd"
    } else {
        ""
    }
}

macro_rules! display_plain {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    )*};
}
display_plain!(
    NodeId,
    HostIdentifier,
    EnvironmentName,
    QueryId,
    CarveSessionId,
    Username,
    SavedQueryName,
    LabelName
);

/// A secret string (enroll secret, token): `Debug` and `Display` never show it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret; surrounding whitespace is trimmed, as osquery trims its secret file.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into().trim().to_owned();
        check(&value, "secret", 1024, |c| !c.is_control())?;
        Ok(SecretValue(value))
    }

    /// A fresh random secret (256 bits, hex).
    pub fn generate() -> Self {
        SecretValue(random_hex(32))
    }

    /// The secret itself: only for writing it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let a = NodeKey::generate();
        let b = NodeKey::generate();
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&a.clone()));
        assert_eq!(format!("{a:?}"), "NodeKey(<redacted>)");
    }

    #[test]
    fn identifiers_reject_bad_input() {
        assert!(NodeKey::parse("").is_err());
        assert!(NodeKey::parse("a b").is_err());
        assert!(NodeKey::parse("x".repeat(257)).is_err());
        assert!(EnvironmentName::parse("Prod").is_err());
        assert!(EnvironmentName::parse("-prod").is_err());
        assert!(EnvironmentName::parse("prod-eu_1").is_ok());
        assert!(CarveSessionId::parse("../etc").is_err());
        assert!(HostIdentifier::parse("web\n01").is_err());
        assert!(HostIdentifier::parse("web-01.example.com").is_ok());
        assert!(QueryId::parse("campaign:42.a").is_ok());
    }

    #[test]
    fn secrets_are_trimmed_and_redacted() {
        let s = SecretValue::new("  s3cret\n").unwrap();
        assert!(s.matches("s3cret"));
        assert!(!s.matches("s3cret "));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(SecretValue::new("   ").is_err());
    }

    #[test]
    fn platform_names_follow_osquerys_bitmask() {
        assert_eq!(platform_name("9"), "linux");
        assert_eq!(platform_name("21"), "darwin");
        assert_eq!(platform_name("2"), "windows");
        assert_eq!(platform_name("33"), "freebsd");
        assert_eq!(platform_name(""), "");
        assert_eq!(platform_name("x"), "");
    }

    #[test]
    fn serde_validates() {
        let ok: std::result::Result<EnvironmentName, _> = serde_json::from_str("\"prod\"");
        assert!(ok.is_ok());
        let bad: std::result::Result<EnvironmentName, _> = serde_json::from_str("\"../x\"");
        assert!(bad.is_err());
    }
}
