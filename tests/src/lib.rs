//! The harness of sgt's end-to-end tests: a real server on a loopback port over real TLS,
//! and an [`Agent`] that speaks the osquery remote protocol to it as `osqueryd` does.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_bin::serve::StartedServer;
use sgt_bin::server::services::agent::AgentService;
use sgt_bin::server::transport::listener::{tls_listener, ClientCertificates, ConnectionLimits};
use sgt_bin::server::{App, ServiceLimits};
use sgt_bin::settings::{Overrides, Settings};
use sgt_core::log_sink::LogType;
use sgt_core::Backends;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// A running server and an HTTPS client that trusts its certificate.
pub struct TestServer {
    base_url: String,
    port: u16,
    ca_file: PathBuf,
    client: reqwest::Client,
    data_dir: TempDir,
    service: Arc<AgentService>,
    admin: Option<Arc<sgt_bin::server::services::admin::AdminService>>,
    stop: Option<StopHandle>,
}

enum StopHandle {
    Full(StartedServer),
    Core(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<sgt_core::Result<()>>,
    ),
}

fn client_trusting(ca_file: &std::path::Path) -> reqwest::Client {
    let ca = std::fs::read(ca_file).expect("CA file");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client")
}

impl TestServer {
    /// `sgt serve` as a user runs it, in a fresh data directory, on a free loopback port.
    pub async fn start() -> TestServer {
        Self::start_with_config("").await
    }

    /// `sgt serve` with a settings file holding `toml`.
    pub async fn start_with_config(toml: &str) -> TestServer {
        let data_dir = TempDir::new().unwrap();
        let config_file = data_dir.path().join("sgt.toml");
        std::fs::write(&config_file, toml).unwrap();
        let settings = Settings::resolve(&Overrides {
            config_file: Some(config_file),
            data_dir: Some(data_dir.path().join("sgt-data")),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        })
        .unwrap();
        let server = sgt_bin::serve::start(&settings)
            .await
            .expect("server starts");
        let ca_file = server.ca_file.clone().unwrap();
        let client = client_trusting(&ca_file);
        TestServer {
            base_url: format!("https://localhost:{}", server.local_addr.port()),
            port: server.local_addr.port(),
            ca_file,
            client,
            service: Arc::clone(&server.service),
            admin: Some(Arc::clone(&server.admin)),
            data_dir,
            stop: Some(StopHandle::Full(server)),
        }
    }

    /// The agent API over TLS on `backends` chosen by the test (fault injectors, ...).
    /// The `default` environment and an enroll secret are created as on first start.
    pub async fn with_backends(backends: Backends) -> TestServer {
        Self::with_backends_and_limits(backends, ConnectionLimits::default()).await
    }

    /// As [`TestServer::with_backends`], with the given connection and request limits.
    pub async fn with_backends_and_limits(
        backends: Backends,
        limits: ConnectionLimits,
    ) -> TestServer {
        let data_dir = TempDir::new().unwrap();
        let sgt_data = data_dir.path().join("sgt-data");
        let files = sgt_bin::tls_files::TlsFiles::under(&sgt_data);
        files.ensure().unwrap();
        let tls = tls_listener(
            &std::fs::read(&files.cert).unwrap(),
            &std::fs::read(&files.key).unwrap(),
            &ClientCertificates::NotAsked,
        )
        .unwrap();
        sgt_bin::bootstrap::bootstrap(&backends, &sgt_data.join("enroll_secret"))
            .await
            .unwrap();
        let app = App::new(backends, &ServiceLimits::default());
        let service = Arc::clone(app.agent());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            app.serve(listener, tls, limits, async move {
                let _ = stopped.await;
            })
            .await
        });
        TestServer {
            base_url: format!("https://localhost:{port}"),
            port,
            client: client_trusting(&files.ca),
            ca_file: files.ca.clone(),
            service,
            admin: None,
            data_dir,
            stop: Some(StopHandle::Core(stop, serving)),
        }
    }

    /// Stops the server: it stops accepting and returns once requests in flight are answered.
    pub async fn stop(mut self) {
        match self.stop.take() {
            Some(StopHandle::Full(server)) => server.shutdown().await,
            Some(StopHandle::Core(stop, serving)) => {
                let _ = stop.send(());
                let _ = serving.await;
            }
            None => {}
        }
    }

    /// The backends behind the API, to check what was stored.
    pub fn backends(&self) -> &Backends {
        self.service.backends()
    }

    /// The service behind the API.
    pub fn service(&self) -> &AgentService {
        &self.service
    }

    /// The admin service of a server made by [`TestServer::start`], for sweeps run at a
    /// time the test chooses.
    ///
    /// # Panics
    /// For a server made on a test's own backends.
    pub fn admin_service(&self) -> &sgt_bin::server::services::admin::AdminService {
        self.admin
            .as_deref()
            .expect("a server made by TestServer::start")
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().join("sgt-data")
    }

    /// The enroll secret of the `default` environment, as osquery reads it from its file.
    pub fn enroll_secret(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("enroll_secret"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `https://localhost:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate that signed the server's certificate (PEM).
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// The HTTPS client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `body` as JSON; returns the status and the parsed JSON answer (which must be a
    /// JSON object: osquery misbehaves on anything else).
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_bytes(path, &[], serde_json::to_vec(body).unwrap())
            .await
    }

    /// POSTs raw bytes with extra headers; returns the status and the parsed JSON object.
    pub async fn post_bytes(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("user-agent", "osquery/5.23.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        assert!(!bytes.is_empty(), "empty body from {path} ({status})");
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body from {path}: {e}: {bytes:?}"));
        assert!(value.is_object(), "non-object body from {path}: {value}");
        (status, value)
    }

    /// Waits (up to 20 s) until the carve of `session_id` is assembled: that happens in the
    /// background once its last block is acknowledged.
    pub async fn wait_for_carve(&self, session_id: &str) {
        let id = sgt_core::types::CarveSessionId::parse(session_id).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let carve = self.backends().store.carve(&id).await.unwrap();
            if carve.status == sgt_core::store::CarveStatus::Complete {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "carve not assembled within 20 s: {carve:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every node enrolled so far (the store's first page), straight from the store.
    pub async fn nodes(&self) -> Vec<sgt_core::store::Node> {
        self.backends()
            .store
            .list_nodes(&Default::default())
            .await
            .unwrap()
    }

    /// The one node enrolled so far.
    pub async fn only_node(&self) -> sgt_core::store::Node {
        let nodes = self.nodes().await;
        assert_eq!(nodes.len(), 1, "expected exactly one node");
        nodes.into_iter().next().unwrap()
    }

    /// Stores live query `id` with `sql` for `node`, straight through the store, and has the
    /// service refresh its view of live queries.
    pub async fn create_query_for(
        &self,
        node: &sgt_core::types::NodeId,
        id: &str,
        sql: &str,
    ) -> sgt_core::types::QueryId {
        let id = sgt_core::types::QueryId::parse(id).unwrap();
        self.backends()
            .store
            .create_query(&sgt_core::store::NewQuery {
                id: id.clone(),
                sql: sql.into(),
                targets: sgt_core::store::QueryTargets {
                    node_ids: vec![node.clone()],
                    ..Default::default()
                },
                node_ids: vec![node.clone()],
                created_by: "test".into(),
                created_at: sgt_core::types::now_unix(),
                expires_at: None,
            })
            .await
            .unwrap();
        // Written behind the service's back, as another instance would: let it see it now
        // rather than at its next refresh.
        self.service.refresh_cache().await.unwrap();
        id
    }

    /// A session token for user `admin`, whose password the first start wrote to a file.
    pub async fn admin_token(&self) -> String {
        let password = std::fs::read_to_string(self.data_dir().join("admin_password")).unwrap();
        self.login("admin", password.trim()).await
    }

    /// Logs in; returns the session token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/api/v1/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Calls the admin API; returns the status and the JSON body (`null` for an empty one).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("non-JSON body from {path}: {e}: {bytes:?}"))
        };
        (status, value)
    }

    /// The actions of the audit entries whose action starts with `prefix`, newest first.
    pub async fn audit_actions(&self, token: &str, prefix: &str) -> Vec<String> {
        let (status, log) = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/audit?action={prefix}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every record the file log sink holds for `log_type`, oldest first.
    pub fn log_records(&self, log_type: LogType) -> Vec<Value> {
        let dir = self.data_dir().join("logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(log_type.as_str()) && n.ends_with(".jsonl"))
        });
        files.sort();
        let current = dir.join(format!("{}.jsonl", log_type.as_str()));
        files.retain(|p| p != &current);
        files.push(current);
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }
}

/// Host details in the shape osquery sends (every value a string).
pub fn host_details(hostname: &str, uuid: &str) -> Value {
    json!({
        "os_version": {"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0", "build": "", "platform": "ubuntu", "platform_like": "debian", "codename": "jammy", "arch": "x86_64"},
        "osquery_info": {"pid": "1234", "uuid": uuid, "instance_id": "b0c1", "version": "5.23.1", "config_hash": "", "config_valid": "0", "extensions": "inactive", "build_platform": "ubuntu", "build_distro": "focal", "start_time": "1736157600", "watcher": "1230", "platform_mask": "9"},
        "system_info": {"hostname": hostname, "uuid": uuid, "cpu_brand": "Intel", "physical_memory": "8589934592"}
    })
}

/// A log line (inside a `data` array) whose raw line breaks, written verbatim to a JSON
/// Lines sink, would make its middle read as a record of node `VICTIM` in `prod`.
pub const FORGING_LOG_LINE: &str = "[{\"name\":\"q\",\"a\":\n{\"node_id\":\"VICTIM\",\"environment\":\"prod\",\"log_type\":\"result\",\"received_at\":1,\"line\":{\"forged\":true}}\r\n,\"b\":1}]";

/// gzip at best compression, as osquery's `--logger_tls_compress` does.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An osquery agent's side of the protocol.
pub struct Agent<'a> {
    server: &'a TestServer,
    /// The host identifier it enrolls with.
    pub host_identifier: String,
    /// Its hardware uuid.
    pub uuid: String,
    /// The key from its last successful enroll.
    pub node_key: String,
}

impl<'a> Agent<'a> {
    /// An agent for `host` that has not enrolled yet.
    pub fn new(server: &'a TestServer, host: &str) -> Agent<'a> {
        Agent {
            server,
            host_identifier: host.to_owned(),
            uuid: format!("UUID-{host}"),
            node_key: String::new(),
        }
    }

    /// From now on talks to `server` instead: another instance behind the same balancer.
    pub fn via(&mut self, server: &'a TestServer) {
        self.server = server;
    }

    /// Enrolls with `secret`; returns the answer, keeping the key when one came back.
    pub async fn enroll_with(&mut self, secret: &str) -> (StatusCode, Value) {
        let (status, body) = self
            .server
            .post(
                sgt_bin::server::paths::ENROLL,
                &json!({
                    "enroll_secret": secret,
                    "host_identifier": self.host_identifier,
                    "platform_type": "9",
                    "host_details": host_details(&self.host_identifier, &self.uuid),
                }),
            )
            .await;
        if let Some(key) = body["node_key"].as_str() {
            self.node_key = key.to_owned();
        }
        (status, body)
    }

    /// An agent for `host` that has not enrolled yet, with a given hardware uuid.
    pub fn with_uuid(server: &'a TestServer, host: &str, uuid: &str) -> Agent<'a> {
        Agent {
            uuid: uuid.to_owned(),
            ..Agent::new(server, host)
        }
    }

    /// Enrolls with the server's secret and asserts it worked.
    pub async fn enroll(&mut self) {
        let secret = self.server.enroll_secret();
        let (status, body) = self.enroll_with(&secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(self.node_key.len() >= 32, "{body}");
    }

    /// POSTs `body` plus this agent's `node_key` to `path`.
    pub async fn call(&self, path: &str, mut body: Value) -> (StatusCode, Value) {
        body["node_key"] = json!(self.node_key);
        self.server.post(path, &body).await
    }

    /// Fetches the config.
    pub async fn config(&self) -> (StatusCode, Value) {
        self.call(sgt_bin::server::paths::CONFIG, json!({})).await
    }

    /// Sends log lines, plain or gzip-compressed.
    pub async fn log(
        &self,
        log_type: &str,
        lines: Vec<Value>,
        compress: bool,
    ) -> (StatusCode, Value) {
        let body = json!({"node_key": self.node_key, "log_type": log_type, "data": lines});
        let bytes = serde_json::to_vec(&body).unwrap();
        if compress {
            self.server
                .post_bytes(
                    sgt_bin::server::paths::LOG,
                    &[("content-encoding", "gzip")],
                    gzip(&bytes),
                )
                .await
        } else {
            self.server
                .post_bytes(sgt_bin::server::paths::LOG, &[], bytes)
                .await
        }
    }

    /// Sends a log batch whose `data` is `data_json` exactly as written (line breaks and all).
    pub async fn log_raw(&self, log_type: &str, data_json: &str) -> (StatusCode, Value) {
        let body = format!(
            r#"{{"node_key":"{}","log_type":"{log_type}","data":{data_json}}}"#,
            self.node_key
        );
        self.server
            .post_bytes(sgt_bin::server::paths::LOG, &[], body)
            .await
    }

    /// Polls for live queries.
    pub async fn distributed_read(&self) -> (StatusCode, Value) {
        self.call(sgt_bin::server::paths::DISTRIBUTED_READ, json!({}))
            .await
    }

    /// Answers live queries.
    pub async fn distributed_write(&self, body: Value) -> (StatusCode, Value) {
        self.call(sgt_bin::server::paths::DISTRIBUTED_WRITE, body)
            .await
    }

    /// Has the server ask this agent for a carve, and answers as osquery 4.7+ does: a live
    /// query on the `carves` table, answered with a row naming the carve's `carve_guid` and
    /// `request_id`. Only carves the server asked for are accepted.
    pub async fn solicit_carve(&self, carve_guid: &str, request_id: &str) {
        let node = self
            .server
            .nodes()
            .await
            .into_iter()
            .find(|n| n.host_identifier.as_str() == self.host_identifier)
            .expect("the agent is enrolled");
        let query = self
            .server
            .create_query_for(
                &node.id,
                sgt_core::types::QueryId::generate().as_str(),
                "SELECT * FROM carves WHERE carve = 1 AND path = '/tmp/evidence';",
            )
            .await;
        let (status, body) = self
            .distributed_write(json!({
                "queries": {query.as_str(): [{"carve": "1", "carve_guid": carve_guid, "request_id": request_id, "path": "/tmp/evidence", "status": "SCHEDULED"}]},
                "statuses": {query.as_str(): 0},
            }))
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }

    /// Uploads `archive` as osquery's carver does once asked: start, then one request per
    /// block, with no node key on the blocks. Returns the session id once it is assembled.
    pub async fn carve(&self, archive: &[u8], block_size: usize) -> String {
        use sgt_bin::server::paths::{CARVE_CONTINUE, CARVE_START};
        self.carve_at((CARVE_START, CARVE_CONTINUE), archive, block_size)
            .await
    }

    /// [`Agent::carve`] through other endpoint paths (start, continue), as a flag file may
    /// name them.
    pub async fn carve_at(
        &self,
        (start_path, continue_path): (&str, &str),
        archive: &[u8],
        block_size: usize,
    ) -> String {
        self.solicit_carve(CARVE_GUID, CARVE_REQUEST_ID).await;
        let block_count = archive.len().div_ceil(block_size);
        let (status, body) = self
            .call(
                start_path,
                json!({
                    "block_count": block_count,
                    "block_size": block_size,
                    "carve_size": archive.len(),
                    "carve_id": CARVE_GUID,
                    "request_id": CARVE_REQUEST_ID,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let session_id = body["session_id"]
            .as_str()
            .expect("string session_id")
            .to_owned();
        for (i, block) in archive.chunks(block_size).enumerate() {
            let (status, body) = self
                .carve_block_at(continue_path, &session_id, i, block)
                .await;
            assert_eq!(status, StatusCode::OK, "block {i}: {body}");
            assert_eq!(body, json!({}));
        }
        self.server.wait_for_carve(&session_id).await;
        session_id
    }

    /// Sends one carve block.
    pub async fn carve_block(
        &self,
        session_id: &str,
        block_id: usize,
        data: &[u8],
    ) -> (StatusCode, Value) {
        self.carve_block_at(
            sgt_bin::server::paths::CARVE_CONTINUE,
            session_id,
            block_id,
            data,
        )
        .await
    }

    async fn carve_block_at(
        &self,
        path: &str,
        session_id: &str,
        block_id: usize,
        data: &[u8],
    ) -> (StatusCode, Value) {
        self.server
            .post(
                path,
                &json!({
                    "block_id": block_id,
                    "session_id": session_id,
                    "request_id": CARVE_REQUEST_ID,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                }),
            )
            .await
    }
}

/// The `carve_guid` of the carves [`Agent::carve`] uploads.
pub const CARVE_GUID: &str = "5bd8b5d1-7a3e-4d8e-8f7e-6b0a1f2c3d4e";
/// The `request_id` of the carves [`Agent::carve`] uploads.
pub const CARVE_REQUEST_ID: &str = "a8e9f0b1-c2d3-4e5f-8a9b-0c1d2e3f4a5b";

/// The admin API's id of the carve with agent session id `session_id`.
pub fn carve_id(session_id: &str) -> String {
    sgt_bin::server::services::agent::carve_public_id(
        &sgt_core::types::CarveSessionId::parse(session_id).unwrap(),
    )
}

/// Bytes of `len` that do not repeat in any short period (so misordered blocks are caught).
pub fn distinct_bytes(len: usize) -> Bytes {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        out.extend_from_slice(&Sha256::digest(counter.to_le_bytes()));
        counter += 1;
    }
    out.truncate(len);
    Bytes::from(out)
}

/// SHA-256 in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
