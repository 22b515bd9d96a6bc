//! `sgt osquery-flags`: a ready osquery flag file for this server.

use crate::server::paths;

use crate::settings::{ClientAuthSetting, Settings, TlsSetting};
use crate::tls_files::TlsFiles;

/// The flag file text. `hostname` replaces the host part of `--tls_hostname`; without it the
/// host is `localhost` for loopback and unspecified listen addresses, else the listen IP.
///
/// # Errors
/// When paths cannot be made absolute.
pub fn render(settings: &Settings, hostname: Option<&str>) -> anyhow::Result<String> {
    let port = settings.listen.port();
    let host = match hostname {
        Some(h) => h.to_owned(),
        None => {
            let ip = settings.listen.ip();
            if ip.is_loopback() || ip.is_unspecified() {
                "localhost".to_owned()
            } else if ip.is_ipv6() {
                format!("[{ip}]")
            } else {
                ip.to_string()
            }
        }
    };
    let tls_hostname = if host.contains(':') && !host.starts_with('[') {
        host // already host:port
    } else {
        format!("{host}:{port}")
    };
    let mut out = String::new();
    out.push_str("# osquery flags for sgt: osqueryd --flagfile=THIS_FILE\n");
    out.push_str(&format!("--tls_hostname={tls_hostname}\n"));
    match &settings.tls {
        TlsSetting::Generated => {
            let files = TlsFiles::under(&std::path::absolute(&settings.data_dir)?);
            out.push_str(&format!("--tls_server_certs={}\n", files.cert.display()));
        }
        TlsSetting::Files { cert, .. } => {
            out.push_str(&format!(
                "--tls_server_certs={}\n",
                std::path::absolute(cert)?.display()
            ));
        }
        TlsSetting::Pem { .. } => {
            out.push_str("# The server's certificate comes from SGT_TLS_CERT_PEM: trust its CA,\n");
            out.push_str("# e.g. --tls_server_certs=/path/to/its/ca.pem.\n");
        }
        TlsSetting::Off => {
            out.push_str("# TLS is terminated by your load balancer: trust its certificate,\n");
            out.push_str("# e.g. --tls_server_certs=/path/to/its/ca.pem, and use its hostname.\n");
        }
    }
    match &settings.client_auth {
        ClientAuthSetting::Off => {}
        ClientAuthSetting::Allow { ca } | ClientAuthSetting::Require { ca } => {
            out.push_str(&format!(
                "# This server asks for a client certificate issued by {}:\n",
                std::path::absolute(ca)?.display()
            ));
            out.push_str("--tls_client_cert=/path/to/this/host/client-cert.pem\n");
            out.push_str("--tls_client_key=/path/to/this/host/client-key.pem\n");
        }
    }
    let secret = std::path::absolute(settings.enroll_secret_file())?;
    let lines = [
        format!("--enroll_secret_path={}", secret.display()),
        format!("--enroll_tls_endpoint={}", paths::ENROLL),
        "--config_plugin=tls".into(),
        format!("--config_tls_endpoint={}", paths::CONFIG),
        "--config_refresh=60".into(),
        "--logger_plugin=tls".into(),
        format!("--logger_tls_endpoint={}", paths::LOG),
        "--logger_tls_period=10".into(),
        "--logger_tls_compress=true".into(),
        "--disable_distributed=false".into(),
        "--distributed_plugin=tls".into(),
        "--distributed_interval=10".into(),
        format!(
            "--distributed_tls_read_endpoint={}",
            paths::DISTRIBUTED_READ
        ),
        format!(
            "--distributed_tls_write_endpoint={}",
            paths::DISTRIBUTED_WRITE
        ),
        "--disable_carver=false".into(),
        format!("--carver_start_endpoint={}", paths::CARVE_START),
        format!("--carver_continue_endpoint={}", paths::CARVE_CONTINUE),
        "--carver_block_size=1048576".into(),
        "--carver_compression=true".into(),
    ];
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Overrides;

    #[test]
    fn flags_name_every_endpoint_and_file() {
        let settings = Settings::resolve(&Overrides {
            data_dir: Some("/srv/sgt".into()),
            ..Default::default()
        })
        .unwrap();
        let text = render(&settings, None).unwrap();
        assert!(text.contains("--tls_hostname=localhost:8443\n"));
        assert!(text.contains("--tls_server_certs=/srv/sgt/tls/cert.pem\n"));
        assert!(text.contains("--enroll_secret_path=/srv/sgt/enroll_secret\n"));
        for path in paths::ALL {
            assert!(text.contains(&format!("={path}\n")), "{path} missing");
        }
        assert!(text.contains("--disable_distributed=false\n"));
        let text = render(&settings, Some("sgt.example.com")).unwrap();
        assert!(text.contains("--tls_hostname=sgt.example.com:8443\n"));
    }
}
