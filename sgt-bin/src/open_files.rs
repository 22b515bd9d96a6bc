//! The process's open-files limit, which bounds its connections: every socket is a file.

use anyhow::Context;

/// Files `sgt serve` keeps for itself beyond its connections: the database, log and carve
/// files, the listener, the runtime's own.
pub const SERVER_RESERVED_FILES: u64 = 256;

/// Raises this process's soft open-files limit to its hard limit (what an unprivileged
/// process may do); returns the limit now in force.
///
/// # Errors
/// When the limits cannot be read.
pub fn raise_to_hard_limit() -> anyhow::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX).context("cannot read the open-files limit")
}

/// The most connections `sgt serve` holds when `max_connections` is not set, however high
/// the open-files limit: containers often allow a million files, and at about 36 KiB per idle
/// TLS connection a flood of a million would take 36 GiB. 65,536 take about 2.3 GiB; set
/// `max_connections` to go past it.
pub const DEFAULT_MAX_CONNECTIONS_CEILING: usize = 65_536;

/// The connections a server can hold with `limit` open files, keeping
/// [`SERVER_RESERVED_FILES`] for itself (at least 1).
pub fn server_connections_within(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(SERVER_RESERVED_FILES).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_and_leaves_room_for_the_server() {
        let limit = raise_to_hard_limit().unwrap();
        assert!(limit >= 64, "{limit}");
        assert_eq!(server_connections_within(20_000), 19_744);
        assert_eq!(server_connections_within(100), 1);
        assert_eq!(server_connections_within(1 << 20), 1_048_320);
    }
}
