//! The admin API client behind every CLI command.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one sgt server with one bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the server at `url`, trusting `ca_cert` (PEM) in addition to nothing else
    /// when given, else the public web roots.
    ///
    /// # Errors
    /// When the CA file cannot be read or parsed.
    pub fn new(url: &str, token: Option<String>, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("sgt-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read CA certificate {}", ca.display()))?;
            builder = builder
                .add_root_certificate(
                    reqwest::Certificate::from_pem(&pem).context("invalid CA certificate PEM")?,
                )
                .tls_built_in_root_certs(false);
        }
        Ok(ApiClient {
            base: url.trim_end_matches('/').to_owned(),
            token,
            http: builder.build()?,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; returns the JSON answer (`null` for 204).
    ///
    /// # Errors
    /// The server's error code and message, or the transport failure.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        Ok(self.call_versioned(method, path, body, None).await?.0)
    }

    /// Sends a request, with `If-Match: if_match` when given; returns the JSON answer
    /// (`null` for 204) and its `ETag`, if any.
    ///
    /// # Errors
    /// As [`ApiClient::call`]; an [`ApiError`] for the server's refusals.
    pub async fn call_versioned(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<(Value, Option<String>)> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(if_match) = if_match {
            request = request.header(reqwest::header::IF_MATCH, if_match);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok((Value::Null, etag));
            }
            let value =
                serde_json::from_slice(&bytes).context("the server answered with invalid JSON")?;
            return Ok((value, etag));
        }
        Err(api_error(status, &bytes))
    }

    /// GET.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// Every item of a paginated list, following `next_cursor`.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn get_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let separator = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{separator}limit=1000&cursor={c}"),
                None => format!("{path}{separator}limit=1000"),
            };
            let page = self.get(&url).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// Streams a GET's body into `out`; returns the bytes written.
    ///
    /// # Errors
    /// As [`ApiClient::call`], or when the file cannot be written.
    pub async fn download(&self, path: &str, out: &Path) -> anyhow::Result<u64> {
        use futures_util::StreamExt;
        use std::io::Write;
        let response = self.request(Method::GET, path).send().await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await?;
            return Err(api_error(status, &bytes));
        }
        let mut file = std::fs::File::create(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let mut written = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        file.sync_all()?;
        Ok(written)
    }
}

/// A refusal from the server: its status and message.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error body's message, or the status when there is none.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status.as_u16())
    }
}

impl std::error::Error for ApiError {}

fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(v) if v["error"]["message"].is_string() => v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ => format!("the server answered HTTP {status}"),
    };
    anyhow!(ApiError { status, message })
}

/// Reads a password from a file (trimmed), or else from `SGT_PASSWORD`, or else a line of
/// standard input.
///
/// # Errors
/// When none gives a password.
pub fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(file) = file {
        return Ok(std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_owned());
    }
    if let Ok(password) = std::env::var("SGT_PASSWORD") {
        return Ok(password);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim().to_owned();
    if password.is_empty() {
        bail!("no password given (use --password-file, SGT_PASSWORD or standard input)");
    }
    Ok(password)
}
