//! Paths of the agent endpoints, for routes, metrics, flag files and clients.

/// Enroll.
pub const ENROLL: &str = "/api/v1/osquery/enroll";
/// Config.
pub const CONFIG: &str = "/api/v1/osquery/config";
/// Result and status logs.
pub const LOG: &str = "/api/v1/osquery/log";
/// Distributed read.
pub const DISTRIBUTED_READ: &str = "/api/v1/osquery/distributed/read";
/// Distributed write.
pub const DISTRIBUTED_WRITE: &str = "/api/v1/osquery/distributed/write";
/// Carve start.
pub const CARVE_START: &str = "/api/v1/osquery/carve/start";
/// Carve continue.
pub const CARVE_CONTINUE: &str = "/api/v1/osquery/carve/continue";
/// Carve start as Fleet names it: an alias of [`CARVE_START`], so a Fleet flag file works.
pub const FLEET_CARVE_START: &str = "/api/v1/osquery/carve/begin";
/// Carve continue as Fleet names it: an alias of [`CARVE_CONTINUE`].
pub const FLEET_CARVE_CONTINUE: &str = "/api/v1/osquery/carve/block";
/// Every agent endpoint (aliases not included).
pub const ALL: [&str; 7] = [
    ENROLL,
    CONFIG,
    LOG,
    DISTRIBUTED_READ,
    DISTRIBUTED_WRITE,
    CARVE_START,
    CARVE_CONTINUE,
];
