//! What a simulated agent sends: host details, log lines and query answers in the shapes a
//! real `osqueryd` produces (see `osquery-protocol.md` §2.3).

use rand::Rng;
use serde_json::{json, Value};

/// The operating system a simulated agent pretends to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Linux,
    Darwin,
    Windows,
}

impl Os {
    /// A mixed fleet: mostly Linux servers, then Macs, then Windows.
    pub(crate) fn for_agent(index: usize) -> Os {
        match index % 10 {
            0..=5 => Os::Linux,
            6..=8 => Os::Darwin,
            _ => Os::Windows,
        }
    }

    /// osquery's platform bitmask as sent at enroll.
    pub(crate) fn platform_type(self) -> &'static str {
        match self {
            Os::Linux => "9",
            Os::Darwin => "21",
            Os::Windows => "2",
        }
    }
}

/// The rows a simulated agent answers detail query `key` with (`osquery_info`,
/// `system_info`, `os_version`, `interface_addresses`): what it reported at enroll, and an
/// address of its own.
pub(crate) fn detail_rows(os: Os, hostname: &str, uuid: &str, key: &str) -> Value {
    if key == "interface_addresses" {
        let n = uuid
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let address = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
        return json!([
            {"interface": "lo", "address": "127.0.0.1", "mask": "255.0.0.0"},
            {"interface": "eth0", "address": address, "mask": "255.255.0.0"}
        ]);
    }
    match host_details(os, hostname, uuid).get(key) {
        Some(row) => json!([row]),
        None => json!([]),
    }
}

/// The rows a simulated agent answers a dynamic label's query with: one row on half the
/// fleet (decided by its uuid and the label, so the same each time), none on the other half.
pub(crate) fn label_rows(uuid: &str, label: &str) -> Value {
    let hash = uuid
        .bytes()
        .chain(label.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    if hash % 2 == 0 {
        json!([{"1": "1"}])
    } else {
        json!([])
    }
}

/// `host_details` as the agent sends them at enroll, every value a string.
pub(crate) fn host_details(os: Os, hostname: &str, uuid: &str) -> Value {
    let (os_version, build_platform, cpu) = match os {
        Os::Linux => (
            json!({"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0", "build": "", "platform": "ubuntu", "platform_like": "debian", "codename": "jammy", "arch": "x86_64"}),
            "ubuntu",
            "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
        ),
        Os::Darwin => (
            json!({"name": "macOS", "version": "14.5", "major": "14", "minor": "5", "patch": "0", "build": "23F79", "platform": "darwin", "platform_like": "darwin", "codename": "", "arch": "arm64"}),
            "darwin",
            "Apple M2",
        ),
        Os::Windows => (
            json!({"name": "Microsoft Windows 11 Enterprise", "version": "10.0.22631", "major": "10", "minor": "0", "patch": "", "build": "22631", "platform": "windows", "platform_like": "windows", "codename": "Microsoft Windows 11 Enterprise", "arch": "64-bit"}),
            "windows",
            "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz",
        ),
    };
    json!({
        "os_version": os_version,
        "osquery_info": {"pid": "4242", "uuid": uuid, "instance_id": uuid, "version": "5.23.1", "config_hash": "", "config_valid": "0", "extensions": "active", "build_platform": build_platform, "build_distro": "", "start_time": "1736157600", "watcher": "4241", "platform_mask": os.platform_type()},
        "system_info": {"hostname": hostname, "uuid": uuid, "cpu_brand": cpu, "cpu_physical_cores": "4", "cpu_logical_cores": "8", "physical_memory": "17179869184", "hardware_vendor": "sgt-loadtest", "hardware_model": "simulated", "computer_name": hostname, "local_hostname": hostname},
        "platform_info": {"vendor": "sgt-loadtest", "version": "1.0", "date": "01/01/2025"}
    })
}

/// osquery's `calendarTime`: asctime in UTC, e.g. `Mon Jan  6 10:00:00 2025 UTC`.
pub(crate) fn calendar_time(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, seconds) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {day:>2} {:02}:{:02}:{:02} {year} UTC",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn process_row(rng: &mut impl Rng) -> Value {
    let pid: u32 = rng.random_range(100..60000);
    json!({"pid": pid.to_string(), "name": "sshd", "path": "/usr/sbin/sshd", "cmdline": format!("sshd: session {pid}"), "uid": "0", "state": "S"})
}

/// A batch of result lines, one of the four shapes chosen at random per batch, plus the
/// occasional status line. Returns `(result_lines, status_lines)`.
pub(crate) fn log_lines(
    rng: &mut impl Rng,
    host_identifier: &str,
    counter: u64,
    lines: usize,
) -> (Vec<Value>, Vec<Value>) {
    let now = sgt_core::types::now_unix();
    let common = |name: &str| json!({"name": name, "hostIdentifier": host_identifier, "calendarTime": calendar_time(now), "unixTime": now, "epoch": 0, "counter": counter, "numerics": false, "decorations": {"host_uuid": host_identifier}});
    let mut results = Vec::with_capacity(lines);
    match rng.random_range(0..4) {
        // Differential, event format: one line per changed row.
        0 => {
            for i in 0..lines {
                let mut line = common("pack_sgt_processes");
                line["columns"] = process_row(rng);
                line["action"] = json!(if i % 3 == 0 { "removed" } else { "added" });
                results.push(line);
            }
        }
        // Differential, batch format: one line per run.
        1 => {
            let mut line = common("pack_sgt_processes");
            line["diffResults"] = json!({
                "removed": (0..lines / 3).map(|_| process_row(rng)).collect::<Vec<_>>(),
                "added": (0..lines - lines / 3).map(|_| process_row(rng)).collect::<Vec<_>>(),
            });
            results.push(line);
        }
        // Snapshot: one line per run with every row.
        2 => {
            let mut line = common("pack_sgt_listening_ports");
            line["counter"] = json!(0);
            line["snapshot"] = json!((0..lines).map(|_| process_row(rng)).collect::<Vec<_>>());
            line["action"] = json!("snapshot");
            results.push(line);
        }
        // Snapshot as events: one line per row.
        _ => {
            for _ in 0..lines {
                let mut line = common("pack_sgt_listening_ports");
                line["counter"] = json!(0);
                line["columns"] = process_row(rng);
                line["action"] = json!("snapshot");
                results.push(line);
            }
        }
    }
    let status = if rng.random_bool(0.2) {
        vec![json!({
            "hostIdentifier": host_identifier, "calendarTime": calendar_time(now), "unixTime": now,
            "severity": 0, "filename": "scheduler.cpp", "line": 83,
            "message": "Executing scheduled query pack_sgt_processes: SELECT * FROM processes",
            "version": "5.23.1", "decorations": {"host_uuid": host_identifier}
        })]
    } else {
        Vec::new()
    };
    (results, status)
}

/// Plausible rows for a live query: a few rows of strings.
pub(crate) fn query_rows(rng: &mut impl Rng) -> Vec<Value> {
    let count = rng.random_range(1..4);
    query_rows_exactly(rng, count)
}

/// `count` rows of a `processes` query.
pub(crate) fn query_rows_exactly(rng: &mut impl Rng, count: usize) -> Vec<Value> {
    (0..count).map(|_| process_row(rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_time_is_osquery_asctime() {
        assert_eq!(calendar_time(1_736_157_600), "Mon Jan  6 10:00:00 2025 UTC");
        assert_eq!(calendar_time(0), "Thu Jan  1 00:00:00 1970 UTC");
        assert_eq!(calendar_time(951_782_400), "Tue Feb 29 00:00:00 2000 UTC");
    }

    #[test]
    fn every_shape_is_a_json_object_line() {
        let mut rng = rand::rng();
        for _ in 0..40 {
            let (results, status) = log_lines(&mut rng, "h", 1, 6);
            assert!(!results.is_empty());
            assert!(results.iter().chain(&status).all(Value::is_object));
        }
    }
}
