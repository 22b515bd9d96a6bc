//! Optional mutual TLS for agents (`tls_client_ca`, `tls_client_auth`): with "require",
//! agent endpoints refuse connections without a client certificate from the CA while the
//! admin API still works with tokens alone; with "allow", a certificate is optional; in both,
//! a certificate from another CA fails the handshake.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_bin::server::paths;
use sgt_tests::{host_details, TestServer};
use tempfile::TempDir;

/// A CA that signs client certificates.
struct ClientCa {
    cert: Certificate,
    key: KeyPair,
}

impl ClientCa {
    fn new(name: &str) -> ClientCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        ClientCa { cert, key }
    }

    /// A client certificate and its key, as one PEM (what reqwest's `Identity` reads).
    fn client_identity(&self, host: &str) -> reqwest::Identity {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
    }
}

/// `sgt serve` with `tls_client_ca` set to `ca` and `tls_client_auth = mode`.
async fn server_with_client_ca(ca: &ClientCa, mode: &str) -> (TestServer, TempDir) {
    let dir = TempDir::new().unwrap();
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let server = TestServer::start_with_config(&format!(
        "tls_client_ca = {:?}\ntls_client_auth = {mode:?}\n",
        ca_file.to_str().unwrap()
    ))
    .await;
    (server, dir)
}

/// An HTTPS client that trusts the server and presents `identity`.
fn client_with(server: &TestServer, identity: reqwest::Identity) -> reqwest::Client {
    let ca = std::fs::read(server.ca_file()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .tls_built_in_root_certs(false)
        .identity(identity)
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    body: &Value,
) -> reqwest::Result<(StatusCode, Value)> {
    let response = client.post(server.url(path)).json(body).send().await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

fn enroll_body(server: &TestServer, host: &str) -> Value {
    json!({
        "enroll_secret": server.enroll_secret(),
        "host_identifier": host,
        "platform_type": "9",
        "host_details": host_details(host, "3D5B0A6C-0000-4000-8000-000000000001"),
    })
}

/// A client certificate from another CA fails the handshake: the enroll never arrives.
async fn assert_a_stranger_ca_fails_the_handshake(server: &TestServer) {
    let stranger = client_with(
        server,
        ClientCa::new("someone else").client_identity("host-2"),
    );
    let sent = post(
        &stranger,
        server,
        paths::ENROLL,
        &enroll_body(server, "host-2"),
    )
    .await;
    assert!(sent.is_err(), "{sent:?}");
}

#[tokio::test]
async fn required_client_certificates_guard_agent_endpoints_only() {
    let ca = ClientCa::new("fleet agents");
    let (server, _dir) = server_with_client_ca(&ca, "require").await;

    // Without a certificate, every agent endpoint is refused with an error body (osquery keeps
    // its data and retries), however the path is spelled, and nothing is stored.
    for path in paths::ALL {
        let (status, body) = server.post(path, &enroll_body(&server, "nocert")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("client certificate"),
            "{body}"
        );
        assert!(body.get("node_key").is_none(), "{body}");
    }
    // Percent-encoded letters are decoded before the check, so they are guarded too.
    for path in [
        "//api/v1/osquery/enroll",
        "/api//v1///osquery/enroll",
        "/api/v1/%6fsquery/enroll",
    ] {
        let (status, body) = server.post(path, &enroll_body(&server, "nocert")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    for path in ["/api/v1/OSQUERY/enroll", "/api/v1/osquery%2Fenroll"] {
        let (status, body) = server.post(path, &enroll_body(&server, "nocert")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    assert!(server.nodes().await.is_empty());

    // The admin API and health check need no certificate.
    let token = server.admin_token().await;
    let (status, _) = server
        .admin(reqwest::Method::GET, "/api/v1/nodes", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let health = server
        .client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // With a certificate from the CA, an agent enrolls and fetches its config.
    let agent = client_with(&server, ca.client_identity("host-1"));
    let (status, body) = post(
        &agent,
        &server,
        paths::ENROLL,
        &enroll_body(&server, "host-1"),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let node_key = body["node_key"].as_str().unwrap().to_owned();
    let (status, config) = post(
        &agent,
        &server,
        paths::CONFIG,
        &json!({"node_key": node_key}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(config.get("schedule").is_some() || config.get("options").is_some());
    assert_eq!(server.nodes().await.len(), 1);

    // A node key alone is not enough: the same key without a certificate is refused.
    let (status, _) = server
        .post(paths::CONFIG, &json!({"node_key": node_key}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_a_stranger_ca_fails_the_handshake(&server).await;
    assert_eq!(server.nodes().await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn allowed_client_certificates_are_optional_but_verified() {
    let ca = ClientCa::new("fleet agents");
    let (server, _dir) = server_with_client_ca(&ca, "allow").await;

    let (status, body) = server
        .post(paths::ENROLL, &enroll_body(&server, "nocert"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["node_key"].is_string());

    let agent = client_with(&server, ca.client_identity("host-1"));
    let (status, body) = post(
        &agent,
        &server,
        paths::ENROLL,
        &enroll_body(&server, "host-1"),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_a_stranger_ca_fails_the_handshake(&server).await;
    assert_eq!(server.nodes().await.len(), 2);
    server.stop().await;
}
