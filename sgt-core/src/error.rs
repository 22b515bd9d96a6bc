//! The one error type every backend and the service layer return.

use std::fmt;

/// What went wrong, by meaning rather than by backend.
///
/// The HTTP layer maps each kind to a response in one place; backends map their own
/// failures into these kinds in one place each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// A thing with that identity exists already.
    AlreadyExists,
    /// A conditional write lost a race with another writer.
    Conflict,
    /// The request is malformed or breaks a limit; retrying it unchanged fails again.
    InvalidInput,
    /// The caller is not who it claims to be (unknown node key, wrong secret, bad token).
    Unauthorized,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// A transient failure (throttled, timed out, overloaded): retrying later may work.
    Unavailable,
    /// The backend cannot do this operation at all.
    Unsupported,
    /// The caller did this too often; it may try again later.
    RateLimited,
    /// Any other failure inside a backend.
    Backend,
}

/// The error of every sgt-core trait and service call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorKind::NotFound`].
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `node`.
        what: String,
    },
    /// See [`ErrorKind::AlreadyExists`].
    #[error("{what} already exists")]
    AlreadyExists {
        /// What already exists.
        what: String,
    },
    /// See [`ErrorKind::Conflict`].
    #[error("conflict: {what}")]
    Conflict {
        /// What was contended.
        what: String,
    },
    /// See [`ErrorKind::InvalidInput`].
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong, safe to show to the caller.
        message: String,
    },
    /// See [`ErrorKind::Unauthorized`].
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Why, safe to show to the caller; never contains the credential.
        message: String,
    },
    /// See [`ErrorKind::Forbidden`].
    #[error("forbidden: {message}")]
    Forbidden {
        /// What is not allowed, safe to show to the caller.
        message: String,
    },
    /// See [`ErrorKind::Unavailable`].
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
    },
    /// See [`ErrorKind::Unsupported`].
    #[error("unsupported: {what}")]
    Unsupported {
        /// The operation the backend cannot do.
        what: String,
    },
    /// See [`ErrorKind::RateLimited`].
    #[error("rate limited: {message}")]
    RateLimited {
        /// What was done too often, safe to show to the caller.
        message: String,
    },
    /// See [`ErrorKind::Backend`].
    #[error("{backend} backend error: {source}")]
    Backend {
        /// The backend's name, e.g. `sqlite`.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The meaning of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// True when the same call may succeed if retried later (transient or lost race).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Unavailable | ErrorKind::Conflict | ErrorKind::RateLimited
        )
    }

    /// A [`Error::RateLimited`] with a message safe to show the caller.
    pub fn rate_limited(message: impl fmt::Display) -> Self {
        Error::RateLimited {
            message: message.to_string(),
        }
    }

    /// A [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound {
            what: what.to_string(),
        }
    }

    /// A [`Error::AlreadyExists`] for `what`.
    pub fn already_exists(what: impl fmt::Display) -> Self {
        Error::AlreadyExists {
            what: what.to_string(),
        }
    }

    /// The store's refusal to demote or delete the last admin (see
    /// [`crate::store::UserStore`]).
    pub fn last_admin() -> Self {
        Error::conflict("the last admin cannot be removed or demoted")
    }

    /// The store's refusal to replace a config that is no longer at the expected version
    /// (see [`crate::store::EnvironmentStore`]).
    pub fn stale_config() -> Self {
        Error::conflict("the config was changed since it was read; read it again")
    }

    /// A [`Error::Conflict`] for `what`.
    pub fn conflict(what: impl fmt::Display) -> Self {
        Error::Conflict {
            what: what.to_string(),
        }
    }

    /// A [`Error::InvalidInput`] with a message safe to show the caller.
    pub fn invalid_input(message: impl fmt::Display) -> Self {
        Error::InvalidInput {
            message: message.to_string(),
        }
    }

    /// A [`Error::Unauthorized`] with a message safe to show the caller.
    pub fn unauthorized(message: impl fmt::Display) -> Self {
        Error::Unauthorized {
            message: message.to_string(),
        }
    }

    /// A [`Error::Forbidden`] with a message safe to show the caller.
    pub fn forbidden(message: impl fmt::Display) -> Self {
        Error::Forbidden {
            message: message.to_string(),
        }
    }

    /// A [`Error::Unavailable`] describing the transient failure.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Error::Unavailable {
            message: message.to_string(),
        }
    }

    /// A [`Error::Unsupported`] naming the operation.
    pub fn unsupported(what: impl fmt::Display) -> Self {
        Error::Unsupported {
            what: what.to_string(),
        }
    }

    /// A [`Error::Backend`] wrapping a backend's own error.
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_kinds_are_retryable() {
        assert!(Error::unavailable("x").is_retryable());
        assert!(Error::conflict("x").is_retryable());
        assert!(!Error::not_found("x").is_retryable());
        assert!(!Error::invalid_input("x").is_retryable());
        assert!(!Error::backend("t", "boom").is_retryable());
    }
}
