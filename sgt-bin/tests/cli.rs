//! The `sgt` binary as a user runs it: first start, restart, SIGTERM, `osquery-flags`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SGT: &str = env!("CARGO_BIN_EXE_sgt");

/// A running `sgt serve`, killed if a test ends without terminating it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sgt serve` on a free port; returns the child, its printed lines up to the
/// "listening on" line, and the URL.
fn start(data_dir: &Path) -> (Server, Vec<String>, String, mpsc::Receiver<String>) {
    start_with(data_dir, &[])
}

fn start_with(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Server, Vec<String>, String, mpsc::Receiver<String>) {
    let mut command = Command::new(SGT);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().copied());
    start_command(command)
}

/// Starts `sgt serve` with a settings file (beside `data_dir`) holding `toml`; returns the
/// child, the URL and the rest of its output.
fn start_with_settings(data_dir: &Path, toml: &str) -> (Server, String, mpsc::Receiver<String>) {
    let config = data_dir.with_file_name("sgt.toml");
    std::fs::create_dir_all(data_dir.parent().unwrap()).unwrap();
    std::fs::write(&config, toml).unwrap();
    let (server, _, url, rest) = start_with(data_dir, &[("SGT_CONFIG", config.to_str().unwrap())]);
    (server, url, rest)
}

/// Runs `command` (an `sgt serve`, perhaps through a shell) until it prints its address.
fn start_command(mut command: Command) -> (Server, Vec<String>, String, mpsc::Receiver<String>) {
    let mut child = command
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
            return (Server(child), seen, url.to_owned(), lines);
        }
    }
}

/// Sends SIGTERM and waits for a clean exit. The tests run on a multi-threaded runtime so that
/// their HTTP clients' connections keep being polled meanwhile: a kept-alive HTTP/2
/// connection must answer the server's shutdown, or the server waits out its drain timeout.
fn terminate(server: &mut Server) {
    let child = &mut server.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "sgt exits cleanly on SIGTERM: {exit}");
}

/// An HTTPS client trusting the server's generated CA.
fn client_trusting(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap()
}

async fn healthz(url: &str, ca: &Path) -> serde_json::Value {
    let port = url.rsplit(':').next().unwrap();
    client_trusting(ca)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
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
        "created user \"admin\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for file in [
        "sgt.db",
        "tls/cert.pem",
        "tls/key.pem",
        "tls/ca.pem",
        "enroll_secret",
        "admin_password",
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
        assert_eq!(mode("admin_password"), 0o600);
        assert_eq!(mode("tls/key.pem"), 0o600);
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let secret = std::fs::read_to_string(data.join("enroll_secret")).unwrap();
    let admin_password = std::fs::read_to_string(data.join("admin_password")).unwrap();
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
    assert_eq!(
        std::fs::read_to_string(data.join("admin_password")).unwrap(),
        admin_password
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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_given_in_the_environment_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // A CA and a certificate for localhost, as an operator would keep in a secret store.
    let material = sgt_bin::tls_files::TlsFiles::under(&dir.path().join("elsewhere"));
    material.ensure().unwrap();
    let cert = std::fs::read_to_string(&material.cert).unwrap();
    let key = std::fs::read_to_string(&material.key).unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, lines, url, _) = start_with(
        &data,
        &[("SGT_TLS_CERT_PEM", &cert), ("SGT_TLS_KEY_PEM", &key)],
    );
    assert!(
        !lines.join("\n").contains("created TLS certificate"),
        "{lines:?}"
    );
    assert!(!data.join("tls").exists(), "no certificate generated");
    assert_eq!(healthz(&url, &material.ca).await["status"], "ok");
    terminate(&mut child);

    // Half of the pair, or the pair with --insecure-http, is refused with a message.
    for env in [
        vec![("SGT_TLS_CERT_PEM", cert.as_str())],
        vec![
            ("SGT_TLS_CERT_PEM", cert.as_str()),
            ("SGT_TLS_KEY_PEM", key.as_str()),
            ("SGT_INSECURE_HTTP", "1"),
        ],
    ] {
        let output = Command::new(SGT)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("SGT_TLS_"), "{stderr}");
        assert!(
            !stderr.contains("PRIVATE KEY"),
            "the key is never printed: {stderr}"
        );
    }
}

/// Runs `sgt ARGS` with the connection settings in `env`; returns (success, stdout, stderr).
/// Runs the `sgt` CLI with `env` and nothing of the caller's `SGT_*` settings; contexts go to
/// a folder of this test process unless `env` names one.
fn sgt(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    sgt_in(Path::new("."), args, env)
}

/// [`sgt`] on a blocking thread, so the test's own tasks (a simulated agent) keep running
/// while the command waits.
fn sgt_in_background(
    args: &[&str],
    env: &[(&str, &str)],
) -> tokio::task::JoinHandle<(bool, String, String)> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sgt(&args, &env)
    })
}

/// A command for the `sgt` CLI as [`sgt`] runs it.
fn sgt_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(SGT);
    command
        .args(args)
        .env_remove("SGT_TOKEN")
        .env_remove("SGT_URL")
        .env_remove("SGT_CA_CERT")
        .env_remove("SGT_CONTEXT")
        .env(
            "SGT_CONFIG_DIR",
            std::env::temp_dir().join(format!("sgt-cli-tests-{}", std::process::id())),
        )
        .envs(env.iter().copied());
    command
}

/// [`sgt`] run in the folder `cwd`.
fn sgt_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = sgt_command(args, env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The admin's CLI environment for a server started by [`start`]: its URL and CA, and a
/// token from `sgt login` with the generated admin password.
struct AdminSession {
    base: String,
    ca: String,
    token: String,
}

impl AdminSession {
    fn login(data: &Path, url: &str) -> AdminSession {
        let port = url.rsplit(':').next().unwrap();
        let mut session = AdminSession {
            base: format!("https://localhost:{port}"),
            ca: data.join("tls/ca.pem").to_str().unwrap().to_owned(),
            token: String::new(),
        };
        let password_file = data.join("admin_password");
        let (ok, token, err) = sgt(
            &["login", "--password-file", password_file.to_str().unwrap()],
            &session.conn(),
        );
        assert!(ok, "{err}");
        session.token = token.trim().to_owned();
        session
    }

    /// `SGT_URL` and `SGT_CA_CERT`.
    fn conn(&self) -> Vec<(&str, &str)> {
        vec![("SGT_URL", &self.base), ("SGT_CA_CERT", &self.ca)]
    }

    /// `conn` and `SGT_TOKEN`.
    fn authed(&self) -> Vec<(&str, &str)> {
        let mut env = self.conn();
        env.push(("SGT_TOKEN", &self.token));
        env
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_queries_are_saved_applied_and_run_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, _, url, _rest) = start(&data);
    let session = AdminSession::login(&data, &url);
    let authed = session.authed();

    let (ok, out, err) = sgt(
        &[
            "query",
            "save",
            "uptime",
            "SELECT total_seconds FROM uptime;",
            "--description",
            "seconds since boot",
        ],
        &authed,
    );
    assert!(ok, "{err}");
    assert!(out.contains("seconds since boot"), "{out}");
    let (ok, out, err) = sgt(&["query", "list", "--saved"], &authed);
    assert!(ok, "{err}");
    assert!(
        out.lines().next().unwrap().contains("DESCRIPTION")
            && out.contains("uptime")
            && out.contains("seconds since boot"),
        "{out}"
    );
    let (ok, out, err) = sgt(&["query", "show", "--saved", "uptime", "--json"], &authed);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["sql"], "SELECT total_seconds FROM uptime;");

    // Config as code: the file's saved queries are created, then updated, then unchanged;
    // --dry-run changes nothing.
    let file = dir.path().join("library.yaml");
    let library = |uptime_sql: &str| {
        format!(
            "saved_queries:\n  uptime:\n    sql: \"{uptime_sql}\"\n    description: seconds since boot\n  users:\n    sql: SELECT username FROM users;\n"
        )
    };
    std::fs::write(&file, library("SELECT total_seconds FROM uptime;")).unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "-f", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        sgt(&args, &authed)
    };
    let (ok, out, err) = apply(&["--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "saved query uptime: unchanged\nsaved query users: would be created\n"
    );
    let (ok, out, err) = apply(&[]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "saved query uptime: unchanged\nsaved query users: created\n"
    );
    std::fs::write(&file, library("SELECT days FROM uptime;")).unwrap();
    let (ok, out, err) = apply(&[]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "saved query uptime: updated\nsaved query users: unchanged\n"
    );
    std::fs::write(&file, "saved_queries:\n  Bad Name: {sql: SELECT 1;}\n").unwrap();
    let (ok, _, err) = apply(&[]);
    assert!(!ok && err.contains("saved_queries.Bad Name"), "{err}");
    std::fs::write(&file, "saved_query:\n  x: {sql: SELECT 1;}\n").unwrap();
    let (ok, _, err) = apply(&[]);
    assert!(!ok && err.contains("unknown key"), "{err}");

    // `query run --saved` sends the saved SQL; an agent answers it.
    let agent = TestAgent::enroll(&data, &session.base, "lab-1").await;
    let agent = tokio::spawn(async move {
        let sql = agent
            .answer_next_query(serde_json::json!({"days": "3"}))
            .await;
        assert_eq!(sql, "SELECT days FROM uptime;");
    });
    let run = sgt_in_background(
        &[
            "query", "run", "--saved", "uptime", "--all", "--wait", "20s",
        ],
        &authed,
    );
    let (ok, out, err) = run.await.unwrap();
    agent.await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("lab-1") && out.contains("DAYS"), "{out}");
    let (ok, _, err) = sgt(&["query", "run", "--saved", "nope", "--all"], &authed);
    assert!(!ok && err.contains("unknown saved query nope"), "{err}");
    let (ok, _, err) = sgt(&["query", "run", "SELECT 1;", "--saved", "uptime"], &authed);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    let (ok, _, err) = sgt(&["query", "delete", "uptime"], &authed);
    assert!(ok && err.contains("saved query uptime deleted"), "{err}");
    // The audit log, filtered: saved-query changes of the last hour, by the admin.
    let (ok, out, err) = sgt(
        &[
            "audit",
            "--action",
            "saved_query.",
            "--actor",
            "admin",
            "--since",
            "1h",
            "--json",
        ],
        &authed,
    );
    assert!(ok, "{err}");
    let entries: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // save, apply (create users, update uptime), delete.
    assert_eq!(
        actions,
        [
            "saved_query.delete",
            "saved_query.put",
            "saved_query.put",
            "saved_query.put"
        ],
        "{out}"
    );
    let (ok, out, _) = sgt(&["audit", "--target", "users", "--limit", "1"], &authed);
    assert!(
        ok && out.lines().count() == 2 && out.contains("saved_query.put"),
        "{out}"
    );
    let (ok, _, err) = sgt(&["audit", "--since", "last tuesday"], &authed);
    assert!(!ok && err.contains("neither a duration"), "{err}");
    let (ok, _, err) = sgt(&["query", "show", "--saved", "uptime"], &authed);
    assert!(!ok && err.contains("HTTP 404"), "{err}");
    terminate(&mut child);
}

/// [`sgt`] with `input` on its standard input.
fn sgt_with_input(args: &[&str], env: &[(&str, &str)], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = sgt_command(args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_apply_changes_nothing_and_prune_deletes_what_the_file_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, _, url, _rest) = start(&data);
    let session = AdminSession::login(&data, &url);
    let authed = session.authed();
    let populated = "environments:\n  prod:\n    settings: {node_expiry_days: 30}\n    config:\n      options: {distributed_interval: 30}\n      schedule:\n        uptime: {query: \"SELECT * FROM uptime;\", interval: 300}\n    packs:\n      mac:\n        platform: darwin\n        labels: [macs]\n        queries:\n          apps: {query: \"SELECT name FROM apps;\", interval: 3600}\n  lab: {}\nlabels:\n  macs: {environment: prod, query: \"SELECT 1 FROM system_info WHERE hardware_vendor = 'Apple Inc.';\", platform: darwin, description: Macs in prod}\n  canary: {}\nsaved_queries:\n  ports: {sql: \"SELECT port FROM listening_ports;\", description: open ports}\n  users: {sql: \"SELECT username FROM users;\"}\n";
    let (ok, _, err) = sgt_with_input(&["apply", "-f", "-"], &authed, populated);
    assert!(ok, "{err}");

    let (ok, out, err) = sgt(
        &["env", "set", "lab", "--node-expiry-days", "7", "--json"],
        &authed,
    );
    assert!(ok, "{err}");
    let lab: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(lab["settings"]["node_expiry_days"], 7);
    let (ok, _, err) = sgt(
        &["env", "set", "lab", "--node-expiry-days", "soon"],
        &authed,
    );
    assert!(!ok && err.contains("neither a number of days"), "{err}");
    let unchanged =
        "label canary: unchanged\nlabel macs: unchanged\ndefault: unchanged\nlab: unchanged\nprod: unchanged\nsaved query ports: unchanged\nsaved query users: unchanged\n";
    for format in [&[][..], &["--json"][..]] {
        let mut args = vec!["export"];
        args.extend_from_slice(format);
        let (ok, exported, err) = sgt(&args, &authed);
        assert!(ok, "{err}");
        assert!(
            exported.contains("SELECT name FROM apps;")
                && exported.contains("node_expiry_days")
                && exported.contains("hardware_vendor"),
            "{exported}"
        );
        let (ok, out, err) = sgt_with_input(
            &["apply", "-f", "-", "--dry-run", "--prune"],
            &authed,
            &exported,
        );
        assert!(ok, "{err}");
        assert_eq!(out, unchanged, "{exported}");
    }

    // Prune: what the file's sections leave out goes; a section the file lacks is kept.
    let trimmed = "environments:\n  default: {}\n  prod: {}\nlabels:\n  canary: {}\nsaved_queries:\n  users: {sql: \"SELECT username FROM users;\"}\n";
    let file = dir.path().join("trimmed.yaml");
    std::fs::write(&file, trimmed).unwrap();
    let path = file.to_str().unwrap();
    let (ok, dry, err) = sgt(&["apply", "-f", path, "--prune", "--dry-run"], &authed);
    assert!(ok, "{err}");
    assert!(
        dry.contains("lab: would be deleted\n")
            && dry.contains("label macs: would be deleted\n")
            && dry.contains("saved query ports: would be deleted\n"),
        "{dry}"
    );
    let (ok, out, _) = sgt(&["export"], &authed);
    assert!(ok && out.contains("lab") && out.contains("ports"), "{out}");
    let (ok, out, err) = sgt(&["apply", "-f", path, "--prune"], &authed);
    assert!(ok, "{err}");
    assert!(
        out.contains("lab: deleted\n")
            && out.contains("label macs: deleted\n")
            && out.contains("saved query ports: deleted\n"),
        "{out}"
    );
    let (ok, out, _) = sgt(&["export", "--json"], &authed);
    assert!(ok);
    let exported: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names = |section: &str| {
        exported[section]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(names("environments"), ["default", "prod"]);
    assert_eq!(names("saved_queries"), ["users"]);
    assert_eq!(names("labels"), ["canary"]);
    std::fs::write(&file, "saved_queries: {}\n").unwrap();
    let (ok, out, err) = sgt(&["apply", "-f", path, "--prune"], &authed);
    assert!(ok, "{err}");
    assert_eq!(out, "saved query users: deleted\n");
    let (ok, out, _) = sgt(&["env", "list"], &authed);
    assert!(ok && out.contains("prod"), "environments kept: {out}");
    terminate(&mut child);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_saves_a_context_that_later_commands_use_and_never_send_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let (mut server_a, _, url_a, _rest_a) = start(&data_a);
    let (mut server_b, _, url_b, _rest_b) = start(&data_b);
    let config = dir.path().join("config");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let config_env = ("SGT_CONFIG_DIR", config.to_str().unwrap());
    let login = |data: &Path, url: &str, extra: &[&str]| {
        let session = AdminSession::login(data, url);
        let password = data.join("admin_password");
        let mut args = vec!["login", "--password-file", password.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut env = session.conn();
        env.push(config_env);
        let (ok, token, err) = sgt(&args, &env);
        assert!(ok, "{err}");
        assert!(token.starts_with("sgt_"), "a pipe gets the token: {token}");
        (session, err)
    };
    let (a, said) = login(&data_a, &url_a, &[]);
    let name_a = a.base.trim_start_matches("https://").to_owned();
    assert!(said.contains(&format!("context {name_a} saved")), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&config.join("contexts.json")), 0o600);
        assert_eq!(mode(&config), 0o700);
    }

    // From a folder without sgt-data and with no SGT_URL, SGT_TOKEN or CA: the context's.
    let (ok, out, err) = sgt_in(&elsewhere, &["env", "create", "only-a"], &[config_env]);
    assert!(ok, "{err}: {out}");

    // A second server under a name of one's own becomes current; `--context` picks one per
    // command; `context use` switches back.
    let (_b, _) = login(&data_b, &url_b, &["--context", "lab"]);
    let (ok, out, err) = sgt_in(&elsewhere, &["context"], &[config_env]);
    assert!(ok, "{err}");
    let current: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert!(current.len() == 1 && current[0].contains("lab"), "{out}");
    assert!(out.contains(&name_a), "{out}");
    let env_list = |extra: &[&str]| {
        let mut args = vec!["env", "list"];
        args.extend_from_slice(extra);
        let (ok, out, err) = sgt_in(&elsewhere, &args, &[config_env]);
        assert!(ok, "{err}");
        out.contains("only-a")
    };
    assert!(!env_list(&[]), "lab is current");
    assert!(env_list(&["--context", &name_a]));
    let (ok, _, err) = sgt_in(&elsewhere, &["context", "use", &name_a], &[config_env]);
    assert!(ok, "{err}");
    assert!(env_list(&[]));

    // The current context's token is never sent to another URL, and SGT_TOKEN wins.
    let ca_b = data_b.join("tls/ca.pem");
    let (ok, _, err) = sgt_in(
        &elsewhere,
        &["whoami", "--url", &url_b.replace("127.0.0.1", "localhost")],
        &[config_env, ("SGT_CA_CERT", ca_b.to_str().unwrap())],
    );
    assert!(!ok && err.contains("HTTP 401"), "{err}");
    let (ok, _, err) = sgt_in(
        &elsewhere,
        &["whoami"],
        &[config_env, ("SGT_TOKEN", "not-a-token")],
    );
    assert!(!ok && err.contains("HTTP 401"), "{err}");

    let (ok, _, err) = sgt_in(&elsewhere, &["context", "delete", "lab"], &[config_env]);
    assert!(ok, "{err}");
    let (_, out, _) = sgt_in(&elsewhere, &["context", "list", "--json"], &[config_env]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(!out.contains(&a.token), "the list never shows tokens");
    let (ok, _, err) = sgt_in(&elsewhere, &["context", "use", "lab"], &[config_env]);
    assert!(!ok && err.contains("no context called"), "{err}");
    terminate(&mut server_a);
    terminate(&mut server_b);
}

/// An agent for the CLI tests: enrolls with the data dir's secret as `host`, and can answer
/// the live queries it is handed.
struct TestAgent {
    client: reqwest::Client,
    base: String,
    node_key: String,
}

impl TestAgent {
    async fn enroll(data: &Path, base: &str, host: &str) -> TestAgent {
        Self::enroll_with(data, base, host, serde_json::json!({})).await
    }

    /// [`TestAgent::enroll`] reporting `host_details`.
    async fn enroll_with(
        data: &Path,
        base: &str,
        host: &str,
        host_details: serde_json::Value,
    ) -> TestAgent {
        let secret = std::fs::read_to_string(data.join("enroll_secret")).unwrap();
        Self::enroll_as(data, base, &secret, host, host_details).await
    }

    /// [`TestAgent::enroll_with`] with another environment's `secret`.
    async fn enroll_as(
        data: &Path,
        base: &str,
        secret: &str,
        host: &str,
        host_details: serde_json::Value,
    ) -> TestAgent {
        let client = client_trusting(&data.join("tls/ca.pem"));
        let enrolled: serde_json::Value = client
            .post(format!("{base}/api/v1/osquery/enroll"))
            .json(&serde_json::json!({"enroll_secret": secret.trim(), "host_identifier": host, "host_details": host_details}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        TestAgent {
            client,
            base: base.to_owned(),
            node_key: enrolled["node_key"].as_str().unwrap().to_owned(),
        }
    }

    /// Polls for a live query for up to 20 s and answers the first with `row`; returns its
    /// SQL.
    async fn answer_next_query(&self, row: serde_json::Value) -> String {
        for _ in 0..200 {
            let read: serde_json::Value = self
                .client
                .post(format!("{}/api/v1/osquery/distributed/read", self.base))
                .json(&serde_json::json!({"node_key": self.node_key}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some((id, sql)) = read["queries"].as_object().and_then(|q| q.iter().next()) {
                let answer = serde_json::json!({"node_key": self.node_key, "queries": {id: [row]}, "statuses": {id: 0}});
                self.client
                    .post(format!("{}/api/v1/osquery/distributed/write", self.base))
                    .json(&answer)
                    .send()
                    .await
                    .unwrap();
                return sql.as_str().unwrap_or_default().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the agent never got a query");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_managed_from_the_cli_and_aim_node_lists_and_campaigns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, _, url, _rest) = start(&data);
    let session = AdminSession::login(&data, &url);
    let authed = session.authed();
    let canary = TestAgent::enroll(&data, &url, "canary-host").await;
    let _other = TestAgent::enroll(&data, &url, "other-host").await;

    let (ok, out, err) = sgt(
        &[
            "label",
            "put",
            "canary",
            "--env",
            "default",
            "--description",
            "first to update",
        ],
        &authed,
    );
    assert!(ok, "{err}");
    assert!(out.contains("first to update"), "{out}");
    let (ok, _, err) = sgt(&["label", "put", "dyn", "--platform", "linux"], &authed);
    assert!(
        !ok && err.contains("--query"),
        "clap wants a query with a platform: {err}"
    );
    let (ok, _, err) = sgt(&["label", "add", "canary", "canary-host"], &authed);
    assert!(ok, "{err}");
    assert!(err.contains("1 added"), "{err}");
    let (ok, _, err) = sgt(&["label", "add", "canary", "no-such-host"], &authed);
    assert!(!ok && err.contains("no node is called"), "{err}");

    let (ok, out, err) = sgt(&["node", "list", "--label", "canary", "--json"], &authed);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["host_identifier"], "canary-host");
    assert_eq!(listed[0]["labels"], serde_json::json!(["canary"]));
    let (ok, out, err) = sgt(&["label", "show", "canary"], &authed);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 members") && out.contains("canary-host"),
        "{out}"
    );

    // A campaign aimed at the label reaches its member.
    let run = sgt_in_background(
        &[
            "query",
            "run",
            "SELECT 7 AS seven;",
            "--label",
            "canary",
            "--wait",
            "20s",
            "--json",
        ],
        &authed,
    );
    assert_eq!(
        canary
            .answer_next_query(serde_json::json!({"seven": "7"}))
            .await,
        "SELECT 7 AS seven;"
    );
    let (ok, stdout, err) = run.await.unwrap();
    assert!(ok, "{err}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["query"]["targeted"], 1, "{stdout}");
    assert_eq!(
        last["query"]["targets"]["labels"],
        serde_json::json!(["canary"])
    );

    let (ok, _, err) = sgt(&["label", "remove", "canary", "canary-host"], &authed);
    assert!(ok && err.contains("1 removed"), "{err}");
    let (ok, out, _) = sgt(&["label", "list"], &authed);
    assert!(ok && out.contains("canary"), "{out}");
    let (ok, _, err) = sgt(&["label", "delete", "canary"], &authed);
    assert!(ok, "{err}");
    let (ok, out, err) = sgt(&["audit", "--action", "label."], &authed);
    assert!(ok, "{err}");
    assert_eq!(out.matches("label.").count(), 4, "{out}");
    terminate(&mut child);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_route_writes_records_only_to_stdout_and_messages_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let config = dir.path().join("sgt.toml");
    std::fs::write(
        &config,
        format!(
            "[[log_sink]]\nurl = \"stdout://\"\n\n[[log_sink]]\nurl = \"file://{}\"\n",
            dir.path().join("files").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(SGT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("SGT_CONFIG", &config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sgt starts");
    let reader = |stream: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let mut server = Server(child);
    let url = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(30))
            .expect("sgt prints its address on stderr");
        if let Some(url) = line.strip_prefix("sgt: listening on ") {
            break url.to_owned();
        }
    };
    let agent = TestAgent::enroll(&data, &url, "container-host").await;
    let line = serde_json::json!({"name": "procs", "action": "added", "columns": {"pid": "7"}});
    let answer: serde_json::Value = agent
        .client
        .post(format!("{url}/api/v1/osquery/log"))
        .json(
            &serde_json::json!({"node_key": agent.node_key, "log_type": "result", "data": [line]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({}));
    let record = stdout
        .recv_timeout(Duration::from_secs(10))
        .expect("the record on stdout");
    let record: serde_json::Value = serde_json::from_str(&record)
        .unwrap_or_else(|e| panic!("stdout holds records only: {record:?}: {e}"));
    assert_eq!(record["line"], line);
    assert_eq!(record["log_type"], "result");
    terminate(&mut server);
    // Everything else it printed went to stderr: stdout holds that one record.
    let rest: Vec<String> = stdout.try_iter().collect();
    assert!(rest.is_empty(), "{rest:?}");
    let files = std::fs::read_to_string(dir.path().join("files/result.jsonl")).unwrap();
    assert_eq!(files.lines().count(), 1, "the file route has it too");
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_hosts_are_listed_and_approved_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, _, url, _rest) = start(&data);
    let session = AdminSession::login(&data, &url);
    let authed = session.authed();
    let (ok, out, err) = sgt(
        &["env", "set", "default", "--enroll-approval", "on", "--json"],
        &authed,
    );
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["settings"]["enroll_approval"], true);
    let (ok, _, err) = sgt(
        &["env", "set", "default", "--enroll-approval", "maybe"],
        &authed,
    );
    assert!(!ok && err.contains("neither on nor off"), "{err}");
    let _agent = TestAgent::enroll(&data, &url, "waiting-host").await;
    let pending = || {
        let (ok, out, err) = sgt(&["node", "list", "--pending", "--json"], &authed);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(pending()[0]["host_identifier"], "waiting-host");
    let (ok, _, err) = sgt(&["node", "approve", "waiting-host"], &authed);
    assert!(ok && err.contains("approved"), "{err}");
    assert_eq!(pending(), serde_json::json!([]));
    let (ok, out, err) = sgt(&["audit", "--action", "node.approve"], &authed);
    assert!(ok && out.contains("node.approve"), "{out}{err}");
    terminate(&mut child);
}

#[tokio::test(flavor = "multi_thread")]
async fn query_run_exit_returns_once_every_online_target_answered_and_streams_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    // Online means seen within 10 s here, so that a host goes offline within the test.
    let (mut server, url, _rest) = start_with_settings(&data, "online_window_seconds = 10\n");
    let session = AdminSession::login(&data, &url);
    let authed = session.authed();
    let _silent = TestAgent::enroll(&data, &session.base, "gone-quiet").await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let present = TestAgent::enroll(&data, &session.base, "present").await;
    let (ok, out, err) = sgt(&["node", "list", "--json"], &authed);
    assert!(ok, "{err}");
    let nodes: serde_json::Value = serde_json::from_str(&out).unwrap();
    let online: std::collections::BTreeMap<&str, bool> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["host_identifier"].as_str().unwrap(),
                n["online"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(online, [("gone-quiet", false), ("present", true)].into());
    let (ok, out, err) = sgt(&["node", "list", "--offline"], &authed);
    assert!(
        ok && out.contains("gone-quiet") && !out.contains("present"),
        "{err}{out}"
    );
    let (ok, out, err) = sgt(&["node", "list", "--online"], &authed);
    assert!(
        ok && out.contains("present") && !out.contains("gone-quiet"),
        "{err}{out}"
    );

    // --exit: the answer of the one online host ends the wait, long before --wait.
    let answering = tokio::spawn(async move {
        present
            .answer_next_query(serde_json::json!({"one": "1"}))
            .await;
        present
    });
    let started = std::time::Instant::now();
    let run = sgt_in_background(
        &[
            "query",
            "run",
            "SELECT 1 AS one;",
            "--all",
            "--exit",
            "--wait",
            "60s",
            "--json",
        ],
        &authed,
    );
    let (ok, out, err) = run.await.unwrap();
    let present = answering.await.unwrap();
    assert!(ok, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["host_identifier"], "present");
    assert_eq!(lines[0]["rows"][0]["one"], "1");
    let query = &lines[1]["query"];
    assert_eq!(
        (query["targeted"].as_u64(), query["online"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(query["succeeded"], 1);

    // Without --exit the run waits for the offline host too, and each answer is printed as
    // it arrives: the first line comes while the run still waits.
    let mut child = sgt_command(
        &[
            "query",
            "run",
            "SELECT 2 AS two;",
            "--all",
            "--wait",
            "8s",
            "--json",
        ],
        &authed,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    present
        .answer_next_query(serde_json::json!({"two": "2"}))
        .await;
    let line = tokio::task::spawn_blocking(move || {
        let line = printed.recv_timeout(Duration::from_secs(6)).unwrap();
        (line, printed)
    });
    let (line, printed) = line.await.unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting for gone-quiet"
    );
    let first: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(first["rows"][0]["two"], "2");
    assert!(child.wait().unwrap().success());
    let last: serde_json::Value = serde_json::from_str(&printed.recv().unwrap()).unwrap();
    assert_eq!(last["query"]["succeeded"], 1);

    // Hosts are named as people know them; a name two hosts share is refused, listing both.
    let twin = |serial: &str| serde_json::json!({"system_info": {"hostname": "twin", "hardware_serial": serial, "uuid": format!("uuid-{serial}")}});
    TestAgent::enroll_with(&data, &session.base, "twin-a", twin("SER-A")).await;
    TestAgent::enroll_with(&data, &session.base, "twin-b", twin("SER-B")).await;
    let show = |host: &str| sgt(&["node", "show", host, "--json"], &authed);
    for name in ["SER-A", "uuid-ser-a", "twin-a"] {
        let (ok, out, err) = show(name);
        assert!(ok, "{name}: {err}");
        let node: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(node["host_identifier"], "twin-a", "{name}");
    }
    let (ok, _, err) = show("twin");
    assert!(
        !ok && err.contains("names 2 nodes") && err.contains("twin-a") && err.contains("twin-b"),
        "{err}"
    );
    let (ok, _, err) = show("nobody");
    assert!(!ok && err.contains("no node is called"), "{err}");
    let (ok, _, err) = sgt(&["node", "delete", "twin-b"], &authed);
    assert!(ok, "{err}");
    let (ok, out, err) = show("twin");
    assert!(ok && out.contains("twin-a"), "{err}");
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_drives_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut child, _, url, _rest) = start(&data);
    let session = AdminSession::login(&data, &url);
    let base = session.base.clone();
    let conn = session.conn();
    let authed = session.authed();

    let (ok, _, err) = sgt(&["env", "create", "prod"], &authed);
    assert!(ok, "{err}");
    let (ok, secret, err) = sgt(&["secret", "create", "prod"], &authed);
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert_eq!(secret.len(), 64);

    // An agent in prod, answering whatever live query it is handed.
    let prod_agent =
        TestAgent::enroll_as(&data, &base, &secret, "prod-web-1", serde_json::json!({})).await;
    let carving_key = prod_agent.node_key.clone();
    let client = prod_agent.client.clone();
    let agent = tokio::spawn(async move {
        prod_agent
            .answer_next_query(serde_json::json!({"version": "5.23.1"}))
            .await;
    });
    let run = sgt_in_background(
        &[
            "query",
            "run",
            "SELECT version FROM osquery_info;",
            "--env",
            "prod",
            "--wait",
            "20s",
            "--json",
        ],
        &authed,
    );
    let (ok, out, err) = run.await.unwrap();
    agent.await.unwrap();
    assert!(ok, "{err}");
    // One JSON object per line: each host's answer, then the campaign's counts.
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["host_identifier"], "prod-web-1");
    assert_eq!(lines[0]["rows"][0]["version"], "5.23.1");
    let answer = &lines[1];
    assert_eq!(answer["query"]["succeeded"], 1);

    // The table output names the host and the column.
    let query_id = answer["query"]["id"].as_str().unwrap();
    let (ok, table, _) = sgt(&["query", "results", query_id], &authed);
    assert!(ok);
    assert!(
        table.contains("prod-web-1") && table.contains("VERSION") && table.contains("5.23.1"),
        "{table}"
    );

    // A carve requested through the CLI, uploaded by the agent, downloaded byte-identical.
    let (ok, nodes, err) = sgt(&["node", "list", "--json"], &authed);
    assert!(ok, "{err}");
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let node_id = nodes[0]["id"].as_str().unwrap().to_owned();
    let (ok, _, err) = sgt(&["carve", "request", &node_id, "/etc/hosts"], &authed);
    assert!(ok, "{err}");
    let agent_call = |path: &str, body: serde_json::Value| {
        let request = client
            .post(format!("{base}/api/v1/osquery/{path}"))
            .json(&body);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let read = agent_call(
        "distributed/read",
        serde_json::json!({"node_key": carving_key}),
    )
    .await;
    let (request_id, sql) = read["queries"].as_object().unwrap().iter().next().unwrap();
    assert!(sql.as_str().unwrap().contains("/etc/hosts"), "{sql}");
    let archive: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let started = agent_call("carve/start", serde_json::json!({"block_count": 2, "block_size": 8192, "carve_size": archive.len(), "carve_id": "g1", "request_id": request_id, "node_key": carving_key})).await;
    let session = started["session_id"].as_str().unwrap().to_owned();
    for (block_id, block) in archive.chunks(8192).enumerate() {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(block);
        let answer = agent_call("carve/continue", serde_json::json!({"block_id": block_id, "session_id": session, "request_id": request_id, "data": data})).await;
        assert_eq!(answer, serde_json::json!({}));
    }
    // Listed by its carve id (never the session id), complete once assembled in the
    // background.
    let carve_id = sgt_bin::server::services::agent::carve_public_id(
        &sgt_core::types::CarveSessionId::parse(&session).unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, table, _) = sgt(&["carve", "list"], &authed);
        assert!(
            ok && table.contains(&carve_id) && !table.contains(&session),
            "{table}"
        );
        if table.contains("complete") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{table}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downloaded = dir.path().join("hosts.tar");
    let (ok, _, err) = sgt(
        &[
            "carve",
            "download",
            &carve_id,
            "-o",
            downloaded.to_str().unwrap(),
        ],
        &authed,
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&downloaded).unwrap(), archive);

    // Config as code: create, update, then nothing to do.
    let file = dir.path().join("fleet.yaml");
    std::fs::write(
        &file,
        "environments:\n  prod:\n    config:\n      schedule:\n        uptime: {query: \"SELECT * FROM uptime;\", interval: 300}\n  lab: {}\n",
    )
    .unwrap();
    let (ok, out, err) = sgt(&["apply", "-f", file.to_str().unwrap()], &authed);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "lab: created\nprod: config updated (decorators removed, options removed, schedule changed)\n"
    );
    let (ok, out, _) = sgt(&["apply", "-f", file.to_str().unwrap()], &authed);
    assert!(ok);
    assert_eq!(out, "lab: unchanged\nprod: unchanged\n");
    std::fs::write(&file, "environments:\n  prod:\n    confg: {}\n").unwrap();
    let (ok, _, err) = sgt(&["apply", "-f", file.to_str().unwrap()], &authed);
    assert!(!ok && err.contains("unknown key"), "{err}");

    // Packs one at a time, the caller, and the audit log of what was done.
    let pack = dir.path().join("inventory.yaml");
    std::fs::write(
        &pack,
        "queries:\n  users: {query: \"SELECT * FROM users;\", interval: 3600}\n",
    )
    .unwrap();
    let (ok, _, err) = sgt(
        &["pack", "set", "prod", "inventory", pack.to_str().unwrap()],
        &authed,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = sgt(&["pack", "list", "prod"], &authed);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["inventory", "1"]),
        "{out}"
    );
    let (ok, out, _) = sgt(&["pack", "show", "prod", "inventory"], &authed);
    assert!(ok && out.contains("SELECT * FROM users;"), "{out}");
    let (ok, _, err) = sgt(&["pack", "delete", "prod", "inventory"], &authed);
    assert!(ok, "{err}");
    let (ok, _, err) = sgt(&["pack", "show", "prod", "inventory"], &authed);
    assert!(!ok && err.contains("HTTP 404"), "{err}");
    let (ok, out, _) = sgt(&["whoami"], &authed);
    assert!(ok && out.contains("admin"), "{out}");
    let (ok, out, err) = sgt(&["audit", "--limit", "2"], &authed);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two entries: {out}");
    assert!(
        lines[1].contains("pack.delete") && lines[2].contains("pack.put"),
        "{out}"
    );
    // A bad argument is refused before anything is sent.
    let (ok, _, err) = sgt(&["user", "create", "x", "--role", "root"], &authed);
    assert!(!ok && err.contains("no role"), "{err}");

    // A viewer is refused writes with a clear message and a failing exit code.
    let with_password: Vec<(&str, &str)> = authed
        .iter()
        .copied()
        .chain([("SGT_PASSWORD", "viewer-password-1")])
        .collect();
    let (ok, _, err) = sgt(
        &["user", "create", "vic", "--role", "viewer"],
        &with_password,
    );
    assert!(ok, "{err}");
    let viewer_conn: Vec<(&str, &str)> = conn
        .iter()
        .copied()
        .chain([("SGT_PASSWORD", "viewer-password-1")])
        .collect();
    let (ok, viewer_token, err) = sgt(&["login", "--username", "vic"], &viewer_conn);
    assert!(ok, "{err}");
    let viewer: Vec<(&str, &str)> = conn
        .iter()
        .copied()
        .chain([("SGT_TOKEN", viewer_token.trim())])
        .collect();
    let (ok, out, _) = sgt(&["env", "list"], &viewer);
    assert!(ok && out.contains("prod"));
    // Tables show times as UTC RFC 3339, not unix seconds.
    let is_time = |word: &str| {
        word.len() == 20
            && word.as_bytes()[10] == b'T'
            && word.ends_with('Z')
            && word.starts_with("20")
    };
    assert!(
        out.lines().any(|line| line.contains("prod")
            && line.split_whitespace().filter(|w| is_time(w)).count() == 2),
        "{out}"
    );
    let (ok, _, err) = sgt(&["env", "create", "nope"], &viewer);
    assert!(!ok);
    assert!(
        err.starts_with("error: ") && err.contains("HTTP 403"),
        "{err}"
    );
    terminate(&mut child);
}

#[tokio::test(flavor = "multi_thread")]
async fn loadtest_accounts_for_every_line_through_node_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut server, _, url, _rest) = start(&data);
    let ca = data.join("tls/ca.pem");
    let port = url.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://localhost:{port}");
    let client = client_trusting(&ca);
    let password = std::fs::read_to_string(data.join("admin_password")).unwrap();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"username": "admin", "password": password.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    // Campaigns for every node, including the simulated ones that enroll later: a question,
    // and a carve request, which the first simulated agent asked answers by uploading one
    // (`--carves 1`), as the server accepts only carves it asked for.
    for sql in [
        "SELECT pid FROM processes;",
        "SELECT * FROM carves WHERE carve = 1 AND path = '/var/log/syslog';",
    ] {
        let created = client
            .post(format!("{base}/api/v1/queries"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"sql": sql, "targets": {"all": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }

    let report = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let secret = format!("@{}", data.join("enroll_secret").display());
    let loadtest = Command::new(SGT)
        .args([
            "loadtest",
            "--url",
            &base,
            "--enroll-secret",
            &secret,
            "--agents",
            "40",
            "--duration",
            "8s",
            "--ramp",
            "1s",
            "--distributed-interval",
            "1s",
            "--logger-period",
            "1s",
            "--config-interval",
            "2s",
            "--carves",
            "1",
            "--carve-bytes",
            "20000",
            "--carve-block-bytes",
            "8000",
            "--assert-error-rate",
            "0",
            "--assert-no-lost-lines",
        ])
        .arg("--ca-cert")
        .arg(&ca)
        .arg("--sink-dir")
        .arg(data.join("logs"))
        .arg("--out")
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run, an operator deletes every node: the agents must re-enroll and lose nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let nodes: serde_json::Value = client
        .get(format!("{base}/api/v1/nodes?limit=100"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 40, "{nodes}");
    for id in &ids {
        let deleted = client
            .delete(format!("{base}/api/v1/nodes/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
    }
    let output = tokio::task::spawn_blocking(move || loadtest.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["agents_enrolled"], 40, "{stdout}");
    assert!(report["reenrolls"].as_u64().unwrap() >= 40, "{stdout}");
    assert_eq!(report["total_errors"], 0, "{stdout}");
    let acknowledged = report["lines_acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 40 * 5, "{stdout}");
    assert_eq!(report["lines_in_sink"].as_u64(), Some(acknowledged));
    assert_eq!(report["lines_lost"], 0);
    assert!(
        report["queries_answered"].as_u64().unwrap() >= 40,
        "{stdout}"
    );
    assert_eq!(report["carves_completed"], 1, "{stdout}");
    assert!(report["timeline"].as_array().unwrap().len() >= 7);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("distributed_read"));
    assert!(!page.contains("<script"), "self-contained, no scripts");
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread")]
async fn loadtest_fails_when_a_threshold_is_crossed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut server, _, url, _rest) = start(&data);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let secret = format!("@{}", data.join("enroll_secret").display());
    let ca = data.join("tls/ca.pem");
    let (ok, stdout, stderr) = sgt(
        &[
            "loadtest",
            "--url",
            &format!("https://localhost:{port}"),
            "--enroll-secret",
            &secret,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--agents",
            "5",
            "--duration",
            "2s",
            "--ramp",
            "0s",
            "--assert-p99-ms",
            "0.001",
        ],
        &[],
    );
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("FAILED: enroll p99"), "{stdout}");
    assert!(stderr.contains("above 0.001 ms"), "{stderr}");
    // A wrong secret: agents never enroll, which the error-rate gate reports.
    let (ok, stdout, _) = sgt(
        &[
            "loadtest",
            "--url",
            &format!("https://localhost:{port}"),
            "--enroll-secret",
            "wrong",
            "--ca-cert",
            ca.to_str().unwrap(),
            "--agents",
            "3",
            "--duration",
            "2s",
            "--ramp",
            "0s",
            "--assert-error-rate",
            "0",
        ],
        &[],
    );
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("only 0 of 3 agents enrolled"), "{stdout}");
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread")]
async fn loadtest_sweep_reports_the_highest_stage_that_held() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut server, _, url, _rest) = start(&data);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let secret = format!("@{}", data.join("enroll_secret").display());
    let ca = data.join("tls/ca.pem");
    let out = dir.path().join("sweep.json");
    let base = format!("https://localhost:{port}");
    let common = [
        "loadtest",
        "--url",
        &base,
        "--enroll-secret",
        &secret,
        "--ca-cert",
        ca.to_str().unwrap(),
        "--duration",
        "2s",
        "--ramp",
        "0s",
        "--distributed-interval",
        "1s",
        "--logger-period",
        "1s",
        "--out",
        out.to_str().unwrap(),
    ];
    let server_pid = server.0.id().to_string();
    let mut held = common.to_vec();
    held.extend([
        "--sweep",
        "5,10",
        "--sweep-max-p99-ms",
        "5000",
        "--server-pid",
        &server_pid,
    ]);
    let (ok, stdout, stderr) = sgt(&held, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("highest stage that held: 10 agents"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["stages"].as_array().unwrap().len(), 2);
    assert_eq!(report["highest_held"], 10);
    // With --server-pid, each stage has both processes' CPU time per 1,000 requests.
    for stage in report["stages"].as_array().unwrap() {
        let cpu = &stage["cpu"];
        assert!(cpu["requests"].as_u64().unwrap() > 0, "{stage}");
        assert!(cpu["server_cpu_ms_per_1000_requests"].is_f64(), "{stage}");
        assert!(cpu["loadtest_cpu_ms_per_1000_requests"].is_f64(), "{stage}");
    }
    assert!(
        stdout.contains("CPU per 1,000 requests: server "),
        "{stdout}"
    );

    let mut broken = common.to_vec();
    broken.extend(["--sweep", "5,10", "--sweep-max-p99-ms", "0.001"]);
    let (_, stdout, _) = sgt(&broken, &[]);
    assert!(stdout.contains("no stage held"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        report["stages"].as_array().unwrap().len(),
        1,
        "stops at the first failure"
    );
    assert!(report["highest_held"].is_null());
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_connect_again_when_the_server_closes_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    // The server closes a connection idle for 1 s; the agents' loops come back every 2 s.
    let (mut server, url, _rest) = start_with_settings(&data, "idle_timeout_seconds = 1\n");
    let port = url.rsplit(':').next().unwrap().to_owned();
    let secret = format!("@{}", data.join("enroll_secret").display());
    let report = dir.path().join("report.json");
    let (ok, stdout, stderr) = sgt(
        &[
            "loadtest",
            "--url",
            &format!("https://localhost:{port}"),
            "--enroll-secret",
            &secret,
            "--ca-cert",
            data.join("tls/ca.pem").to_str().unwrap(),
            "--sink-dir",
            data.join("logs").to_str().unwrap(),
            "--agents",
            "20",
            "--duration",
            "9s",
            "--ramp",
            "1s",
            "--distributed-interval",
            "2s",
            "--logger-period",
            "2s",
            "--config-interval",
            "2s",
            "--assert-error-rate",
            "0",
            "--assert-no-lost-lines",
            "--out",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let connections = &report["connections"];
    assert_eq!(connections["mode"], "agent", "{connections}");
    assert_eq!(report["total_errors"], 0, "{stdout}");
    // Each agent held a connection per loop, and opened them again as the server closed them.
    assert!(
        connections["open_peak"].as_u64().unwrap() >= 20,
        "{connections}"
    );
    assert!(
        connections["open_peak"].as_u64().unwrap() <= 60,
        "{connections}"
    );
    assert!(
        connections["reconnects"].as_u64().unwrap() >= 60,
        "{connections}"
    );
    assert!(
        connections["handshakes"].as_u64().unwrap()
            >= 60 + connections["reconnects"].as_u64().unwrap(),
        "{connections}"
    );
    assert!(
        stdout.contains("reconnects after the server closed one"),
        "{stdout}"
    );
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_queries_during_a_run_are_answered_by_every_agent_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (mut server, _, url, _rest) = start(&data);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://localhost:{port}");
    let secret = format!("@{}", data.join("enroll_secret").display());
    let ca = data.join("tls/ca.pem");
    let report = dir.path().join("report.json");
    let (ok, stdout, stderr) = sgt(
        &[
            "loadtest",
            "--url",
            &base,
            "--enroll-secret",
            &secret,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--agents",
            "20",
            "--duration",
            "10s",
            "--ramp",
            "1s",
            "--distributed-interval",
            "1s",
            "--live-query-every",
            "3s",
            "--live-query-rows",
            "4",
            "--admin-password-file",
            data.join("admin_password").to_str().unwrap(),
            "--assert-error-rate",
            "0",
            "--assert-campaigns-answered",
            "--assert-campaign-p95-s",
            "5",
            "--out",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // From second 2 every 3 s while 2 distributed intervals and 2 s remain: at 2 s and 5 s.
    let campaigns = report["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 2, "{stdout}");
    for campaign in campaigns {
        assert_eq!(campaign["targeted"], 20, "{campaign}");
        assert_eq!(campaign["answered"], 20, "{campaign}");
        assert_eq!(campaign["succeeded"], 20, "{campaign}");
        assert_eq!(campaign["rows_read_back"], 80, "{campaign}");
        assert!(
            campaign["seconds_to_100"].as_f64().unwrap() < 5.0,
            "{campaign}"
        );
        assert!(campaign["result_bytes"].as_u64().unwrap() > 20 * 4 * 20);
    }
    assert!(stdout.contains("100 % in"), "{stdout}");
    // The results are there for the CLI too.
    let password = std::fs::read_to_string(data.join("admin_password")).unwrap();
    let conn = [
        ("SGT_URL", base.as_str()),
        ("SGT_CA_CERT", ca.to_str().unwrap()),
        ("SGT_PASSWORD", password.trim()),
    ];
    let (ok, token, err) = sgt(&["login"], &conn);
    assert!(ok, "{err}");
    let mut authed = conn.to_vec();
    authed.push(("SGT_TOKEN", token.trim()));
    let id = campaigns[0]["id"].as_str().unwrap();
    let (ok, out, err) = sgt(&["query", "results", id, "--json"], &authed);
    assert!(ok, "{err}");
    let results: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 20);
    terminate(&mut server);
}

#[test]
fn serve_holds_as_many_connections_as_its_open_files_limit_allows() {
    let dir = tempfile::tempdir().unwrap();
    let serve_under_limit = |config: &str| {
        let file = dir.path().join("sgt.toml");
        std::fs::write(&file, config).unwrap();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"ulimit -n 2000 && exec "$0" serve --listen 127.0.0.1:0 --data-dir "$1" --config "$2""#)
            .arg(SGT)
            .arg(dir.path().join("sgt-data"))
            .arg(&file);
        let (mut server, lines, _, _rest) = start_command(command);
        terminate(&mut server);
        lines
    };
    // Unset, max_connections is what the limit leaves after the server's own files.
    let lines = serve_under_limit("");
    assert!(
        lines.contains(&"sgt: holds up to 1744 connections (open-files limit 2000)".to_owned()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:?}");
    // Set above it, the server says so at start.
    let lines = serve_under_limit("max_connections = 5000\n");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "sgt: warning: max_connections 5000 is above the 1744 connections the open-files limit 2000 allows"
        )),
        "{lines:?}"
    );
}

#[test]
fn a_fleet_larger_than_the_open_files_limit_is_refused_before_it_starts() {
    // Nothing listens on port 9: the run must stop before it connects anywhere.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 300 && exec {SGT} loadtest --url https://127.0.0.1:9 --enroll-secret x --agents 1000 --duration 60s"
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("at most 78 agents fit"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing ran");
    // Pooled mode holds only its --connections, so the same fleet fits.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 300 && exec {SGT} loadtest --url https://127.0.0.1:9 --enroll-secret x --agents 1000 --duration 1s --connection-mode pooled --connections 8"
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("agents fit"), "{stderr}");
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmHWM`, `VmRSS`), in bytes.
fn proc_memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

/// gzip of `prefix`, then `count` copies of `element` joined by commas, then `suffix`,
/// compressed as it is made so the test never holds the inflated text.
fn gzip_of_repeated(prefix: &str, element: &str, count: usize, suffix: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(prefix.as_bytes()).unwrap();
    let chunk = format!("{element},").repeat(1024);
    for _ in 0..count / 1024 {
        gz.write_all(chunk.as_bytes()).unwrap();
    }
    for _ in 0..count % 1024 {
        gz.write_all(format!("{element},").as_bytes()).unwrap();
    }
    gz.write_all(element.as_bytes()).unwrap();
    gz.write_all(suffix.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Hostile bodies against the real process: small gzip bodies that inflate to 64 MiB of tiny
/// JSON elements (each costs many times its 2 bytes once parsed) or to large log batches,
/// 16 at once, half of them with a valid node key. Peak memory stays under the body budget
/// (256 MiB by default) plus 128 MiB, each gets an error body or is stored, and the server
/// keeps serving; within a minute RSS is back within 32 MiB of where it started (the issue
/// asks 64). glibc keeps freed arena memory unless the server trims it: without the trim, RSS
/// stayed at 80 to 127 MiB against 24 MiB before; with it, it is back at 27 or 28 MiB within
/// seconds.
#[tokio::test(flavor = "multi_thread")]
async fn sixteen_inflating_bodies_at_once_stay_within_the_body_budget() {
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sgt-data");
    let (child, _, url, _) = start(&data);
    let pid = child.0.id();
    let client = client_trusting(&data.join("tls/ca.pem"));
    let secret = std::fs::read_to_string(data.join("enroll_secret")).unwrap();
    let enrolled: serde_json::Value = client
        .post(format!("{url}/api/v1/osquery/enroll"))
        .json(&serde_json::json!({"enroll_secret": secret.trim(), "host_identifier": "mem"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node_key = enrolled["node_key"].as_str().unwrap().to_owned();
    let rss_before = proc_memory(pid, "VmRSS");

    // Just under the 64 MiB limit once inflated.
    let key = format!(r#""node_key":"{node_key}","#);
    let zeros = |key: &str| {
        let prefix = format!(r#"{{{key}"log_type":"result","data":["#);
        gzip_of_repeated(&prefix, "0", 33_000_000, "]}")
    };
    let lines = |key: &str| {
        let prefix = format!(r#"{{{key}"log_type":"result","data":["#);
        let line = format!(r#"{{"name":"q","columns":{{"x":"{}"}}}}"#, "y".repeat(1000));
        gzip_of_repeated(&prefix, &line, 48_000, "]}")
    };
    let rows = |key: &str| {
        let prefix = format!(r#"{{{key}"queries":{{"q1":["#);
        gzip_of_repeated(&prefix, r#"{"a":""}"#, 7_000_000, "]}}")
    };
    let bodies = [
        (zeros(""), "log"),
        (zeros(&key), "log"),
        (lines(""), "log"),
        (lines(&key), "log"),
        (rows(""), "distributed/write"),
        (rows(&key), "distributed/write"),
    ];
    let mut requests = Vec::new();
    for i in 0..16 {
        let kind = i % bodies.len();
        let (body, path) = &bodies[kind];
        let request = client
            .post(format!("{url}/api/v1/osquery/{path}"))
            .header("content-encoding", "gzip")
            .body(body.clone())
            .send();
        requests.push(async move {
            let response = request.await.unwrap();
            let status = response.status();
            let answer: serde_json::Value = response.json().await.unwrap();
            (kind, status, answer)
        });
    }
    for (kind, status, answer) in futures_util::future::join_all(requests).await {
        if kind == 3 && status == reqwest::StatusCode::OK {
            // A large batch from an enrolled node may be stored, and is then answered {}.
            assert_eq!(answer, serde_json::json!({}));
        } else {
            // An error body, or for a batch without a node key osquery's re-enroll answer.
            let refused = answer["error"].is_string() || answer["node_invalid"] == true;
            assert!(refused, "{kind}: {status} {answer}");
        }
    }
    assert_eq!(
        healthz(&url, &data.join("tls/ca.pem")).await,
        serde_json::json!({"status": "ok"})
    );
    let peak = proc_memory(pid, "VmHWM");
    assert!(peak < 256 * MIB + 128 * MIB, "peak RSS {} MiB", peak / MIB);

    // Back within 64 MiB of the start within a minute. Usually it is within 5 MiB; what
    // stays depends on which arenas the burst's threads used, and reached 37 MiB in runs
    // beside a release build.
    let given_back = std::time::Instant::now() + Duration::from_secs(60);
    let mut rss = proc_memory(pid, "VmRSS");
    while rss > rss_before + 64 * MIB && std::time::Instant::now() < given_back {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss = proc_memory(pid, "VmRSS");
    }
    eprintln!(
        "peak {} MiB; RSS {} MiB before the burst, {} MiB after",
        peak / MIB,
        rss_before / MIB,
        rss / MIB
    );
    assert!(
        rss <= rss_before + 64 * MIB,
        "RSS {} MiB a minute after the burst, {} MiB before it",
        rss / MIB,
        rss_before / MIB
    );
}
