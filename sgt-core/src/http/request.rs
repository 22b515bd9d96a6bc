//! Turning an agent's HTTP request into a typed body: size limits, gzip, lenient UTF-8, JSON.

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::body_budget::{BodyBudget, BodyShare};
use crate::error::{Error, Result};

/// The raw parts of an agent request that the handlers need.
#[derive(Debug)]
pub(crate) struct AgentRequest {
    /// The endpoint's body limit, which holds for the decompressed body too.
    limit: u64,
    content_encoding: Option<String>,
    authorization: Option<String>,
    /// Where the request came from, when the server knows.
    pub(crate) source: Option<std::net::IpAddr>,
    body: Bytes,
    /// The server's body budget, which inflated bytes are charged to (none outside a server).
    budget: Option<BodyBudget>,
    /// The share of the budget the inflated body holds until the request is answered.
    inflated: std::sync::Mutex<Option<BodyShare>>,
}

/// How much of a gzip body is inflated (and charged to the budget) at a time.
const INFLATE_PIECE: usize = 64 * 1024;

/// POST with a body of at most `limit` bytes, both as sent and, when gzip, decompressed: a
/// small gzip bomb is refused once `limit` bytes have come out of it, in bounded memory.
pub(crate) fn agent_request(
    limit: u64,
) -> impl Filter<Extract = (AgentRequest,), Error = Rejection> + Clone {
    warp::post()
        .and(warp::body::content_length_limit(limit))
        .and(warp::header::optional::<String>("content-encoding"))
        .and(warp::header::optional::<String>("authorization"))
        .and(super::client_address())
        .and(warp::ext::optional::<BodyBudget>())
        .and(warp::body::bytes())
        .map(
            move |content_encoding, authorization, source, budget, body| AgentRequest {
                limit,
                content_encoding,
                authorization,
                source,
                body,
                budget,
                inflated: std::sync::Mutex::new(None),
            },
        )
}

impl AgentRequest {
    /// The body decompressed (gzip or identity) and parsed as a JSON object into `T`.
    ///
    /// Invalid UTF-8 inside strings is replaced by U+FFFD rather than refused: osquery does not
    /// validate the UTF-8 of distributed query results.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        parse_json(&self.decoded_body()?)
    }

    fn decoded_body(&self) -> Result<Cow<'_, [u8]>> {
        let encoding = self
            .content_encoding
            .as_deref()
            .map(|e| e.trim().to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("") | Some("identity") => Ok(Cow::Borrowed(&self.body)),
            Some("gzip") | Some("x-gzip") => {
                let mut out = Vec::new();
                let limit = self.limit;
                let mut reader = flate2::read::GzDecoder::new(&self.body[..]).take(limit + 1);
                let mut piece = vec![0u8; INFLATE_PIECE];
                loop {
                    let n = reader
                        .read(&mut piece)
                        .map_err(|_| Error::invalid_input("body is not a valid gzip stream"))?;
                    if n == 0 {
                        break;
                    }
                    if (out.len() + n) as u64 > limit {
                        return Err(Error::invalid_input(format!(
                            "decompressed body is larger than {limit} bytes"
                        )));
                    }
                    self.charge_inflated(n)?;
                    out.extend_from_slice(&piece[..n]);
                }
                Ok(Cow::Owned(out))
            }
            Some(_) => Err(Error::invalid_input(
                "unsupported content-encoding (only gzip is accepted)",
            )),
        }
    }

    /// Takes `bytes` of inflated body from the server's budget until the request is answered.
    fn charge_inflated(&self, bytes: usize) -> Result<()> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let mut held = self
            .inflated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if budget.try_add(&mut held, bytes as u64) {
            Ok(())
        } else {
            Err(Error::unavailable("the server is busy, retry later"))
        }
    }

    /// The node key: the body's `node_key` when non-empty, else `Authorization: NodeKey <key>`.
    /// The body wins on a mismatch: it is what every osquery version sends.
    pub(crate) fn node_key<'a>(&'a self, from_body: Option<&'a str>) -> Result<&'a str> {
        if let Some(key) = from_body.filter(|k| !k.is_empty()) {
            return Ok(key);
        }
        self.authorization
            .as_deref()
            .and_then(|h| h.strip_prefix("NodeKey "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::unauthorized("no node key"))
    }
}

/// Parses a body that must be a JSON object into `T`. Invalid UTF-8 inside strings becomes
/// U+FFFD; errors say where and what without echoing the request's values.
pub(crate) fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T> {
    let text: Cow<'_, str> = String::from_utf8_lossy(raw);
    if !text.trim_start().starts_with('{') {
        return Err(Error::invalid_input("request body must be a JSON object"));
    }
    serde_json::from_str(&text).map_err(json_error)
}

/// A JSON error message that says where and what, without echoing the request's values.
fn json_error(e: serde_json::Error) -> Error {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Data => {
            let message = e.to_string();
            let field = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next());
            match field {
                Some(field) => Error::invalid_input(format!("missing field `{field}`")),
                None => {
                    Error::invalid_input(format!("a field has the wrong type or value at {at}"))
                }
            }
        }
        Category::Eof => Error::invalid_input("request body is truncated JSON"),
        Category::Syntax | Category::Io => {
            Error::invalid_input(format!("request body is malformed JSON at {at}"))
        }
    }
}

/// Deserializes a non-negative integer sent as a JSON number or a decimal string.
pub(crate) fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| D::Error::custom("expected a non-negative integer")),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom("expected a non-negative integer")),
        _ => Err(D::Error::custom("expected a non-negative integer")),
    }
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn request(encoding: Option<&str>, body: Vec<u8>) -> AgentRequest {
        AgentRequest {
            limit: 64 * 1024,
            content_encoding: encoding.map(str::to_owned),
            authorization: None,
            source: None,
            body: Bytes::from(body),
            budget: None,
            inflated: std::sync::Mutex::new(None),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn inflated_bytes_are_charged_to_the_budget_until_the_request_is_dropped() {
        let budget = BodyBudget::new(100 * 1024);
        let json = format!(r#"{{"node_key":"k","pad":"{}"}}"#, "x".repeat(60 * 1024));
        let mut first = request(Some("gzip"), gzip(json.as_bytes()));
        first.budget = Some(budget.clone());
        assert_eq!(first.json::<Probe>().unwrap().node_key, "k");
        // The first request still holds its 60 KiB: a second one does not fit beside it.
        let mut second = request(Some("gzip"), gzip(json.as_bytes()));
        second.budget = Some(budget.clone());
        let err = second.json::<Probe>().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Unavailable, "{err}");
        // Answered and dropped, the first gives its share back.
        drop(first);
        drop(second);
        let mut third = request(Some("gzip"), gzip(json.as_bytes()));
        third.budget = Some(budget);
        assert_eq!(third.json::<Probe>().unwrap().node_key, "k");
    }

    #[derive(Debug, Deserialize)]
    struct Probe {
        node_key: String,
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_endpoint_limit() {
        // 128 MiB of zeros compress to about 128 KiB; the read stops after 64 KiB + 1 byte.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..128 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let started = std::time::Instant::now();
        let err = request(Some("gzip"), bomb).json::<Probe>().unwrap_err();
        assert!(
            err.to_string()
                .contains("decompressed body is larger than 65536 bytes"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Exactly at the limit is fine as far as size goes.
        let mut body = br#"{"node_key":""#.to_vec();
        body.resize(64 * 1024 - 2, b'k');
        body.extend_from_slice(br#""}"#);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let probe: Probe = request(Some("gzip"), gz.finish().unwrap()).json().unwrap();
        assert_eq!(probe.node_key.len(), 64 * 1024 - 15);
    }

    #[test]
    fn gzip_and_plain_bodies_parse_alike() {
        let plain = br#"{"node_key":"k"}"#.to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(request(None, plain).json::<Probe>().unwrap().node_key, "k");
        assert_eq!(
            request(Some("gzip"), gz.clone())
                .json::<Probe>()
                .unwrap()
                .node_key,
            "k"
        );
        let truncated = gz[..gz.len() - 6].to_vec();
        let err = request(Some("gzip"), truncated)
            .json::<Probe>()
            .unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }

    #[test]
    fn non_objects_and_bad_json_are_refused_without_echo() {
        let err = request(None, br#"["k"]"#.to_vec())
            .json::<Probe>()
            .unwrap_err();
        assert!(err.to_string().contains("JSON object"));
        let err = request(None, br#"{"node_key":123456789}"#.to_vec())
            .json::<Probe>()
            .unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
        let err = request(None, br#"{}"#.to_vec())
            .json::<Probe>()
            .unwrap_err();
        assert!(
            err.to_string().contains("missing field `node_key`"),
            "{err}"
        );
        let err = request(None, br#"{"node_key":"#.to_vec())
            .json::<Probe>()
            .unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = request(Some("br"), b"{}".to_vec())
            .json::<Probe>()
            .unwrap_err();
        assert!(err.to_string().contains("content-encoding"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let mut body = br#"{"node_key":"a"#.to_vec();
        body.push(0xff);
        body.extend_from_slice(br#""}"#);
        assert_eq!(
            request(None, body).json::<Probe>().unwrap().node_key,
            "a\u{fffd}"
        );
    }

    #[test]
    fn node_key_prefers_body_then_header() {
        let mut r = request(None, Vec::new());
        r.authorization = Some("NodeKey hdr".into());
        assert_eq!(r.node_key(Some("body")).unwrap(), "body");
        assert_eq!(r.node_key(Some("")).unwrap(), "hdr");
        assert_eq!(r.node_key(None).unwrap(), "hdr");
        r.authorization = Some("Bearer x".into());
        assert!(r.node_key(None).is_err());
    }
}
