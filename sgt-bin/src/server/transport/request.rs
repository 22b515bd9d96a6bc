//! Turning an agent's HTTP request into a typed body: size limits, gzip, lenient UTF-8, JSON.

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::body_budget::{BodyBudget, BodyShare};
use sgt_core::error::{Error, Result};

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
    /// The server's body budget, which inflated bytes and parsed copies are charged to (none
    /// outside a server).
    budget: Option<BodyBudget>,
    /// The share of the budget this request holds beyond its declared length, until it is
    /// answered: its inflated body, and what parsing copies out of the body.
    held: std::sync::Mutex<Option<BodyShare>>,
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
                held: std::sync::Mutex::new(None),
            },
        )
}

impl AgentRequest {
    /// The body decompressed (gzip or identity) and parsed as a JSON object into `T`.
    ///
    /// Invalid UTF-8 inside strings is replaced by U+FFFD rather than refused: osquery does not
    /// validate the UTF-8 of distributed query results.
    ///
    /// What the parsed form costs is charged to the body budget before it is built: a copy
    /// of the body when its UTF-8 needs repair, and the body's length again for what parsing
    /// copies out of it (strings, raw lines). Body types must keep their other costs small
    /// and bounded: no `serde_json::Value` trees of request data (a 2-byte element costs 32
    /// bytes or more there), element counts capped where each element costs a heap entry.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let decoded = self.decoded_body()?;
        let text: Cow<'_, str> = String::from_utf8_lossy(&decoded);
        if let Cow::Owned(repaired) = &text {
            self.charge(repaired.len())?;
        }
        self.charge(text.len())?;
        parse_json_text(&text)
    }

    /// Takes `bytes` more from the server's budget, held until the request is answered.
    ///
    /// # Errors
    /// `Unavailable` when the budget cannot spare them (the server is busy).
    pub(crate) fn charge(&self, bytes: usize) -> Result<()> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if budget.try_add(&mut held, bytes as u64) {
            Ok(())
        } else {
            Err(Error::unavailable("the server is busy, retry later"))
        }
    }

    fn decoded_body(&self) -> Result<Cow<'_, [u8]>> {
        let encoding = self
            .content_encoding
            .as_deref()
            .map(|e| e.trim().to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("") | Some("identity") => Ok(Cow::Borrowed(&self.body)),
            Some("gzip") | Some("x-gzip") => {
                let limit = self.limit;
                // The gzip trailer's size (mod 2^32, as the sender claims it), capped at the
                // limit: one allocation up front instead of copies as the buffer doubles.
                // Only what is inflated is charged: unwritten capacity is not resident.
                let claimed = self
                    .body
                    .len()
                    .checked_sub(4)
                    .and_then(|at| self.body.get(at..))
                    .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
                    .unwrap_or(0);
                let mut out = Vec::with_capacity(u64::from(claimed).min(limit) as usize);
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
                    self.charge(n)?;
                    out.extend_from_slice(&piece[..n]);
                }
                Ok(Cow::Owned(out))
            }
            Some(_) => Err(Error::invalid_input(
                "unsupported content-encoding (only gzip is accepted)",
            )),
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
            .and_then(|h| credentials(h, "NodeKey"))
            .ok_or_else(|| Error::unauthorized("no node key"))
    }
}

/// The credentials of an `Authorization` header value when its scheme is `scheme`, matched
/// case-insensitively as HTTP auth schemes are; `None` for another scheme or no credentials.
pub(crate) fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim_start().split_once(' ')?;
    let rest = rest.trim();
    (given.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// Parses a body that must be a JSON object into `T`. Invalid UTF-8 inside strings becomes
/// U+FFFD; errors say where and what without echoing the request's values.
pub(crate) fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T> {
    parse_json_text(&String::from_utf8_lossy(raw))
}

fn parse_json_text<T: DeserializeOwned>(text: &str) -> Result<T> {
    if !text.trim_start().starts_with('{') {
        return Err(Error::invalid_input("request body must be a JSON object"));
    }
    serde_json::from_str(text).map_err(json_error)
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
            // serde's own messages may quote the request's values; ours (from the body
            // types' deserializers) never do, and say what the limit is.
            match field {
                Some(field) => Error::invalid_input(format!("missing field `{field}`")),
                None if message.starts_with(OWN_MESSAGE) => {
                    Error::invalid_input(message[OWN_MESSAGE.len()..].to_owned())
                }
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

/// The start of a deserializer error message written by sgt (safe to show: it quotes no
/// request value); [`json_error`] shows what follows it.
pub(crate) const OWN_MESSAGE: &str = "sgt: ";

/// Deserializes a non-negative integer sent as a JSON number or a decimal string, without
/// building anything from any other value.
pub(crate) fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct LenientU64;
    impl serde::de::Visitor<'_> for LenientU64 {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("expected a non-negative integer"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom("expected a non-negative integer"))
        }
    }
    d.deserialize_any(LenientU64)
}

/// Deserializes a string sent as a JSON string, number or null (as `""`), without building
/// anything from any other value.
pub(crate) fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct LenientString;
    impl serde::de::Visitor<'_> for LenientString {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(LenientString)
}

/// Deserializes a JSON array of at most `MAX` elements, refusing a longer one as soon as
/// its `MAX + 1`-th element is read: each element costs a heap entry beyond its text, so
/// an unbounded count of tiny elements would cost many times the body's size.
pub(crate) fn bounded_array<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const MAX: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const MAX: usize> serde::de::Visitor<'de> for Bounded<T, MAX> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX} elements")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            use serde::de::Error as _;
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX).min(1024));
            while let Some(element) = seq.next_element()? {
                if out.len() == MAX {
                    return Err(A::Error::custom(format!(
                        "{OWN_MESSAGE}an array holds more than {MAX} elements"
                    )));
                }
                out.push(element);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded::<T, MAX>(std::marker::PhantomData))
}

/// Deserializes a JSON object of at most `MAX` members into (key, raw value) pairs in the
/// order sent, without parsing the values: each member costs its key's and value's text
/// and a few dozen bytes, and a longer object is refused as soon as its `MAX + 1`-th member
/// is read.
pub(crate) fn bounded_raw_object<'de, D, const MAX: usize>(
    d: D,
) -> Result<Vec<(String, Box<serde_json::value::RawValue>)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    type Members = Vec<(String, Box<serde_json::value::RawValue>)>;
    struct Bounded<const MAX: usize>;
    impl<'de, const MAX: usize> serde::de::Visitor<'de> for Bounded<MAX> {
        type Value = Members;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an object of at most {MAX} members")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Members, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
            use serde::de::Error as _;
            let mut out = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.len() == MAX {
                    return Err(A::Error::custom(format!(
                        "{OWN_MESSAGE}an object holds more than {MAX} members"
                    )));
                }
                out.push((key, map.next_value()?));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Bounded::<MAX>)
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
            held: std::sync::Mutex::new(None),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn inflated_bytes_are_charged_to_the_budget_until_the_request_is_dropped() {
        let budget = BodyBudget::new(200 * 1024);
        let json = format!(r#"{{"node_key":"k","pad":"{}"}}"#, "x".repeat(60 * 1024));
        let mut first = request(Some("gzip"), gzip(json.as_bytes()));
        first.budget = Some(budget.clone());
        assert_eq!(first.json::<Probe>().unwrap().node_key, "k");
        // The first request still holds its 60 KiB inflated and 60 KiB parsed: a second one
        // does not fit beside it.
        let mut second = request(Some("gzip"), gzip(json.as_bytes()));
        second.budget = Some(budget.clone());
        let err = second.json::<Probe>().unwrap_err();
        assert_eq!(err.kind(), sgt_core::error::ErrorKind::Unavailable, "{err}");
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
        r.authorization = Some("nodekey  hdr2 ".into());
        assert_eq!(r.node_key(None).unwrap(), "hdr2");
        assert_eq!(credentials("bearer tok", "Bearer"), Some("tok"));
        assert_eq!(credentials("BEARER tok", "Bearer"), Some("tok"));
        assert_eq!(credentials("Bearer ", "Bearer"), None);
        assert_eq!(credentials("Bearertok", "Bearer"), None);
    }
}
