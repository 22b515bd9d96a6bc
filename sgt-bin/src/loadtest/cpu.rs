//! CPU time per 1,000 requests over the steady part of a run, read from `/proc` (Linux):
//! the server's (`--server-pid`, when it runs on this machine) and the simulator's own.

use serde::Serialize;

/// Linux reports `utime` and `stime` in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a whole process (all its threads, live and exited), in ms.
///
/// # Errors
/// The process does not exist or `/proc` is not there (not Linux).
pub fn process_cpu_ms(pid: &str) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu_ms(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has an unexpected shape"),
        )
    })
}

/// `utime + stime` from the text of `/proc/PID/stat`, in ms. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_cpu_ms(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), ppid (4), … utime is field 14 and stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 * 1000.0 / TICKS_PER_SECOND)
}

/// CPU readings at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    pub(crate) at_second: u64,
    pub(crate) requests: u64,
    pub(crate) server_ms: Option<f64>,
    pub(crate) loadtest_ms: Option<f64>,
}

impl CpuSample {
    /// Reads both processes now; `requests` is the count completed so far.
    pub(crate) fn take(server_pid: Option<&str>, at_second: u64, requests: u64) -> Self {
        CpuSample {
            at_second,
            requests,
            server_ms: server_pid.and_then(|pid| process_cpu_ms(pid).ok()),
            loadtest_ms: process_cpu_ms("self").ok(),
        }
    }
}

/// CPU time per 1,000 requests between two samples.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuWindow {
    /// Seconds since the start of the run where the window begins and ends.
    pub(crate) from_second: u64,
    pub(crate) to_second: u64,
    /// Requests completed in the window.
    pub(crate) requests: u64,
    pub(crate) requests_per_second: f64,
    /// Server CPU (user + system) per 1,000 requests; absent without `--server-pid`.
    pub(crate) server_cpu_ms_per_1000_requests: Option<f64>,
    /// Server CPU as a share of one core over the window.
    pub(crate) server_cores: Option<f64>,
    pub(crate) loadtest_cpu_ms_per_1000_requests: Option<f64>,
    pub(crate) loadtest_cores: Option<f64>,
}

impl CpuWindow {
    /// The window from `start` to `end`, or `None` when it holds no request or no time.
    pub(crate) fn between(start: &CpuSample, end: &CpuSample) -> Option<Self> {
        let requests = end.requests.checked_sub(start.requests)?;
        let seconds = end.at_second.checked_sub(start.at_second)? as f64;
        if requests == 0 || seconds == 0.0 {
            return None;
        }
        let per_1000 = |a: Option<f64>, b: Option<f64>| Some((b? - a?) * 1000.0 / requests as f64);
        let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / 1000.0 / seconds);
        Some(CpuWindow {
            from_second: start.at_second,
            to_second: end.at_second,
            requests,
            requests_per_second: requests as f64 / seconds,
            server_cpu_ms_per_1000_requests: per_1000(start.server_ms, end.server_ms),
            server_cores: cores(start.server_ms, end.server_ms),
            loadtest_cpu_ms_per_1000_requests: per_1000(start.loadtest_ms, end.loadtest_ms),
            loadtest_cores: cores(start.loadtest_ms, end.loadtest_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A name with a space and a parenthesis; utime 1234 and stime 66 ticks.
        let stat = "4834 (sgt (x) y) S 1 4834 4834 0 -1 4194560 9 0 0 0 1234 66 0 0 20 0 8 0";
        assert_eq!(parse_stat_cpu_ms(stat), Some(13_000.0));
        assert_eq!(parse_stat_cpu_ms("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu_ms("self").expect("proc") >= 0.0);
    }

    #[test]
    fn windows_divide_cpu_by_requests_and_seconds() {
        let start = CpuSample {
            at_second: 10,
            requests: 1_000,
            server_ms: Some(500.0),
            loadtest_ms: None,
        };
        let end = CpuSample {
            at_second: 20,
            requests: 21_000,
            server_ms: Some(1_500.0),
            loadtest_ms: Some(3.0),
        };
        let window = CpuWindow::between(&start, &end).expect("window");
        assert_eq!(window.requests, 20_000);
        assert_eq!(window.requests_per_second, 2_000.0);
        assert_eq!(window.server_cpu_ms_per_1000_requests, Some(50.0));
        assert_eq!(window.server_cores, Some(0.1));
        assert_eq!(window.loadtest_cpu_ms_per_1000_requests, None);
        assert!(CpuWindow::between(&end, &start).is_none());
    }
}
