//! The `sgt` binary as a user runs it: first start, restart, SIGTERM, `osquery-flags`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SGT: &str = env!("CARGO_BIN_EXE_sgt");

/// Starts `sgt serve` on a free port; returns the child, its printed lines up to the
/// "listening on" line, and the URL.
fn start(data_dir: &Path) -> (Child, Vec<String>, String, mpsc::Receiver<String>) {
    start_with(data_dir, &[])
}

fn start_with(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Child, Vec<String>, String, mpsc::Receiver<String>) {
    let mut child = Command::new(SGT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("sgt starts");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sgt did not print its address; it printed {seen:?}");
        };
        seen.push(line.clone());
        if let Some(url) = line.strip_prefix("sgt: listening on ") {
            return (child, seen, url.to_owned(), lines);
        }
    }
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "sgt exits cleanly on SIGTERM: {exit}");
}

async fn healthz(url: &str, ca: &Path) -> serde_json::Value {
    let port = url.rsplit(':').next().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_creates_everything_and_restart_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");

    let (mut child, lines, url, rest) = start(&data);
    let text = lines.join("\n");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    for expected in [
        "created TLS certificate",
        "created SQLite database",
        "created environment \"default\"",
        "created enroll secret",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for file in [
        "sgt.db",
        "tls/cert.pem",
        "tls/key.pem",
        "tls/ca.pem",
        "enroll_secret",
    ] {
        assert!(data.join(file).exists(), "{file} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(data.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("enroll_secret"), 0o600);
        assert_eq!(mode("tls/key.pem"), 0o600);
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let secret = std::fs::read_to_string(data.join("enroll_secret")).unwrap();
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    assert_eq!(
        healthz(&url, &data.join("tls/ca.pem")).await,
        serde_json::json!({"status": "ok"})
    );
    terminate(&mut child);
    let tail: Vec<String> = rest.try_iter().collect();
    assert!(tail.iter().any(|l| l.contains("shutting down")), "{tail:?}");

    let (mut child, lines, url, _) = start(&data);
    assert!(
        !lines.join("\n").contains("created"),
        "a restart creates nothing: {lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("enroll_secret")).unwrap(),
        secret
    );
    assert_eq!(std::fs::read(data.join("tls/cert.pem")).unwrap(), cert);
    assert_eq!(
        healthz(&url, &data.join("tls/ca.pem")).await["status"],
        "ok"
    );
    terminate(&mut child);
}

#[test]
fn osquery_flags_point_at_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(SGT)
        .args(["osquery-flags", "--listen", "127.0.0.1:9443", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let flags = String::from_utf8(output.stdout).unwrap();
    assert!(flags.contains("--tls_hostname=localhost:9443\n"), "{flags}");
    assert!(flags.contains(&format!(
        "--enroll_secret_path={}/enroll_secret\n",
        dir.path().display()
    )));
    assert!(flags.contains("--logger_plugin=tls\n"));
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("run `sgt serve` once"));
}

#[test]
fn bad_settings_fail_with_a_message() {
    let output = Command::new(SGT)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("IP:PORT"), "{stderr}");
}

#[tokio::test]
async fn insecure_http_serves_plain_http_for_a_tls_terminating_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    // The stdout reader is dropped here on purpose: a closed stdout must not crash the server
    // when it says "shutting down".
    let (mut child, lines, url, _) = start_with(&data, &[("SGT_INSECURE_HTTP", "1")]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        !lines.join("\n").contains("TLS certificate"),
        "no certificate made: {lines:?}"
    );
    let health: serde_json::Value = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    terminate(&mut child);
}
