//! The osquery config document: what the server accepts from operators, and how it is
//! rendered for one node.

use serde_json::{json, Map, Value};

use sgt_core::error::{Error, Result};
use sgt_core::types::LabelName;

/// The largest config osquery 4.3 to 5.23.1 accepts (compact JSON); newer agents take 4 MiB.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// osquery refuses configs nested this deep or deeper.
const MAX_DEPTH: usize = 32;
/// Keys the server owns in a served config.
const RESERVED_KEYS: [&str; 3] = ["etag", "error", "node_invalid"];

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_queries(queries: &Value, context: &str) -> Result<()> {
    let queries = queries
        .as_object()
        .ok_or_else(|| Error::invalid_input(format!("{context} must be an object")))?;
    for (name, query) in queries {
        let here = format!("{context}.{name}");
        let query = query
            .as_object()
            .ok_or_else(|| Error::invalid_input(format!("{here} must be an object")))?;
        match query.get("query") {
            Some(Value::String(sql)) if !sql.trim().is_empty() => {}
            _ => {
                return Err(Error::invalid_input(format!(
                    "{here}.query must be a non-empty string"
                )))
            }
        }
        if let Some(interval) = query.get("interval") {
            let seconds = match interval {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            if !seconds.is_some_and(|s| (1..=604_800).contains(&s)) {
                return Err(Error::invalid_input(format!(
                    "{here}.interval must be 1 to 604800 seconds"
                )));
            }
        }
        if let Some(platform) = query.get("platform") {
            if !platform.is_string() {
                return Err(Error::invalid_input(format!(
                    "{here}.platform must be a string"
                )));
            }
        }
    }
    Ok(())
}

/// Checks an osquery config document before it is stored, so agents never receive one they
/// would refuse or misread: a JSON object of at most 1 MiB and less than 32 levels deep, with
/// no `etag`, `error` or `node_invalid` key; `options` an object; every `schedule` entry and
/// pack query an object with a non-empty `query` and an `interval` of 1 to 604800 seconds;
/// every pack inline (osquery's TLS plugin cannot fetch pack files).
///
/// # Errors
/// `InvalidInput` naming the first problem.
pub fn validate_config(config: &Value) -> Result<()> {
    let root = config
        .as_object()
        .ok_or_else(|| Error::invalid_input("config must be a JSON object"))?;
    for key in RESERVED_KEYS {
        if root.contains_key(key) {
            return Err(Error::invalid_input(format!(
                "config must not have a top-level \"{key}\" key"
            )));
        }
    }
    let size = serde_json::to_vec(config)
        .map_err(|e| Error::invalid_input(e.to_string()))?
        .len();
    if size > MAX_CONFIG_BYTES {
        return Err(Error::invalid_input(format!(
            "config is {size} bytes; osquery accepts at most {MAX_CONFIG_BYTES}"
        )));
    }
    if depth(config) >= MAX_DEPTH {
        return Err(Error::invalid_input(format!(
            "config is nested {MAX_DEPTH} levels or deeper; osquery refuses it"
        )));
    }
    if let Some(options) = root.get("options") {
        if !options.is_object() {
            return Err(Error::invalid_input("options must be an object"));
        }
    }
    if let Some(schedule) = root.get("schedule") {
        check_queries(schedule, "schedule")?;
    }
    if let Some(packs) = root.get("packs") {
        let packs = packs
            .as_object()
            .ok_or_else(|| Error::invalid_input("packs must be an object"))?;
        for (name, pack) in packs {
            validate_pack(name, pack)?;
        }
    }
    Ok(())
}

/// Checks one inline pack: an object with a `queries` object, optional `discovery` strings.
///
/// # Errors
/// `InvalidInput` naming the problem.
pub fn validate_pack(name: &str, pack: &Value) -> Result<()> {
    // Names travel as URL path segments: keep them to characters that need no encoding.
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 128 || !name.chars().all(allowed) {
        return Err(Error::invalid_input(
            "pack name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'",
        ));
    }
    let pack = pack.as_object().ok_or_else(|| {
        Error::invalid_input(format!(
            "packs.{name} must be an inline object (osquery cannot fetch pack files over TLS)"
        ))
    })?;
    match pack.get("queries") {
        Some(queries) => check_queries(queries, &format!("packs.{name}.queries"))?,
        None => {
            return Err(Error::invalid_input(format!(
                "packs.{name}.queries is missing"
            )))
        }
    }
    if let Some(labels) = pack.get("labels") {
        let ok = labels.as_array().is_some_and(|labels| {
            !labels.is_empty()
                && labels
                    .iter()
                    .all(|l| l.as_str().is_some_and(|l| LabelName::parse(l).is_ok()))
        });
        if !ok {
            return Err(Error::invalid_input(format!(
                "packs.{name}.labels must be a non-empty array of label names"
            )));
        }
    }
    if let Some(discovery) = pack.get("discovery") {
        let ok = discovery
            .as_array()
            .is_some_and(|d| d.iter().all(Value::is_string));
        if !ok {
            return Err(Error::invalid_input(format!(
                "packs.{name}.discovery must be an array of SQL strings"
            )));
        }
    }
    Ok(())
}

/// Whether osquery on `platform` (`linux`, `darwin`, `windows`, `freebsd`) would run
/// something whose `platform` value is `filter` (comma-separated, as osquery reads it).
/// Unknown words and unknown node platforms keep the entry: the agent has the last word.
pub fn platform_matches(filter: &str, platform: &str) -> bool {
    if platform.is_empty() {
        return true;
    }
    filter.split(',').map(str::trim).any(|word| match word {
        "" | "any" | "all" => true,
        "posix" => matches!(platform, "linux" | "darwin" | "freebsd"),
        "linux" | "ubuntu" | "centos" => platform == "linux",
        "darwin" => platform == "darwin",
        "windows" => platform == "windows",
        "freebsd" => platform == "freebsd",
        _ => true,
    })
}

fn keep_for_platform(entry: &Value, platform: &str) -> bool {
    match entry.get("platform").and_then(Value::as_str) {
        Some(filter) => platform_matches(filter, platform),
        None => true,
    }
}

fn filter_queries(queries: &mut Map<String, Value>, platform: &str) {
    queries.retain(|_, query| keep_for_platform(query, platform));
}

/// The labels a pack is for (its `labels` array); empty when it is for every node.
fn pack_labels(pack: &Value) -> impl Iterator<Item = &str> {
    pack.get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Every label some pack of `config` is for, ordered by name: the labels a node's config
/// depends on.
pub fn labels_in_packs(config: &Value) -> Vec<LabelName> {
    let mut labels: Vec<LabelName> = config
        .get("packs")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|packs| packs.values())
        .flat_map(pack_labels)
        .filter_map(|l| LabelName::parse(l).ok())
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

/// The config as one node of `platform` that is a member of `labels` should get it: scheduled
/// queries and packs (and pack queries) for other platforms left out, and packs for labels it
/// is in none of (a pack's `labels` key itself is not passed on). `shard` is left for osquery,
/// which applies it from its own hostname.
pub fn render_for_node(config: &Value, platform: &str, labels: &[LabelName]) -> Value {
    let mut config = config.clone();
    if let Some(Value::Object(schedule)) = config.get_mut("schedule") {
        filter_queries(schedule, platform);
    }
    if let Some(Value::Object(packs)) = config.get_mut("packs") {
        packs.retain(|_, pack| {
            keep_for_platform(pack, platform)
                && (pack.get("labels").is_none()
                    || pack_labels(pack).any(|l| labels.iter().any(|m| m.as_str() == l)))
        });
        for pack in packs.values_mut() {
            if let Some(pack) = pack.as_object_mut() {
                pack.remove("labels");
            }
            if let Some(Value::Object(queries)) = pack.get_mut("queries") {
                filter_queries(queries, platform);
            }
        }
    }
    config
}

/// The config a new environment starts with: a small cross-platform schedule that tells an
/// operator what each host is, plus options that make the agent use this server's live
/// queries promptly.
pub fn default_config() -> serde_json::Value {
    json!({
        "options": {
            "distributed_interval": 10,
            "logger_tls_period": 10,
            "schedule_splay_percent": 10,
        },
        "schedule": {
            "osquery_info": {
                "query": "SELECT version, build_platform, build_distro, config_hash, config_valid, extensions FROM osquery_info;",
                "interval": 3600,
                "snapshot": true,
            },
            "os_version": {
                "query": "SELECT name, version, major, minor, patch, build, platform, arch FROM os_version;",
                "interval": 3600,
                "snapshot": true,
            },
            "system_info": {
                "query": "SELECT hostname, uuid, cpu_brand, cpu_logical_cores, physical_memory, hardware_vendor, hardware_model FROM system_info;",
                "interval": 86400,
                "snapshot": true,
            },
            "uptime": {
                "query": "SELECT total_seconds FROM uptime;",
                "interval": 3600,
                "snapshot": true,
            },
            "users": {
                "query": "SELECT uid, gid, username, description, directory, shell FROM users;",
                "interval": 3600,
            },
            "listening_ports": {
                "query": "SELECT pid, port, protocol, family, address FROM listening_ports;",
                "interval": 600,
            },
        },
        "decorators": {
            "load": ["SELECT uuid AS host_uuid FROM system_info;", "SELECT hostname FROM system_info;"],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_configs_pass_and_bad_ones_are_named() {
        assert!(validate_config(&default_config()).is_ok());
        let cases = [
            (json!([]), "JSON object"),
            (json!({"error": "x"}), "\"error\""),
            (json!({"etag": "x"}), "\"etag\""),
            (json!({"options": []}), "options"),
            (
                json!({"schedule": {"q": {"interval": 60}}}),
                "schedule.q.query",
            ),
            (
                json!({"schedule": {"q": {"query": "SELECT 1;", "interval": 0}}}),
                "interval",
            ),
            (
                json!({"schedule": {"q": {"query": "SELECT 1;", "interval": 700000}}}),
                "interval",
            ),
            (
                json!({"packs": {"p": "/etc/osquery/packs/p.conf"}}),
                "inline",
            ),
            (json!({"packs": {"p": {}}}), "queries is missing"),
            (
                json!({"packs": {"p": {"queries": {}, "discovery": [1]}}}),
                "discovery",
            ),
        ];
        for (config, needle) in cases {
            let err = validate_config(&config).unwrap_err().to_string();
            assert!(err.contains(needle), "{config}: {err}");
        }
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        assert!(validate_config(&json!({"options": {"x": deep}})).is_err());
        let big = "x".repeat(MAX_CONFIG_BYTES);
        assert!(validate_config(&json!({"options": {"x": big}})).is_err());
    }

    #[test]
    fn rendering_drops_other_platforms_only() {
        let config = json!({
            "schedule": {
                "all": {"query": "SELECT 1;"},
                "mac": {"query": "SELECT 2;", "platform": "darwin"},
                "nix": {"query": "SELECT 3;", "platform": "posix"},
                "win": {"query": "SELECT 4;", "platform": "windows", "shard": 10},
            },
            "packs": {
                "macpack": {"platform": "darwin", "queries": {"a": {"query": "SELECT 5;"}}},
                "mixed": {"queries": {"l": {"query": "SELECT 6;", "platform": "linux"}, "w": {"query": "SELECT 7;", "platform": "windows"}}},
            }
        });
        let linux = render_for_node(&config, "linux", &[]);
        let names: Vec<&String> = linux["schedule"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["all", "nix"]);
        assert!(linux["packs"].get("macpack").is_none());
        assert!(linux["packs"]["mixed"]["queries"].get("w").is_none());
        assert!(linux["packs"]["mixed"]["queries"].get("l").is_some());
        let windows = render_for_node(&config, "windows", &[]);
        assert_eq!(
            windows["schedule"]["win"]["shard"], 10,
            "shard is left to osquery"
        );
        assert_eq!(render_for_node(&config, "", &[]), config);
    }

    #[test]
    fn packs_for_labels_go_to_their_members_only() {
        let config = json!({"packs": {
            "all": {"queries": {"a": {"query": "SELECT 1;", "interval": 60}}},
            "web": {"labels": ["web", "edge"], "queries": {"w": {"query": "SELECT 2;", "interval": 60}}},
            "db": {"labels": ["db"], "platform": "darwin", "queries": {"d": {"query": "SELECT 3;", "interval": 60}}},
        }});
        validate_config(&config).unwrap();
        let label = |name: &str| LabelName::parse(name).unwrap();
        assert_eq!(
            labels_in_packs(&config),
            [label("db"), label("edge"), label("web")]
        );
        let packs = |labels: &[LabelName], platform: &str| {
            let rendered = render_for_node(&config, platform, labels);
            rendered["packs"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(packs(&[], "linux"), ["all"]);
        assert_eq!(packs(&[label("edge")], "linux"), ["all", "web"]);
        assert_eq!(
            packs(&[label("db")], "linux"),
            ["all"],
            "the platform still counts"
        );
        assert_eq!(
            packs(&[label("db"), label("web")], "darwin"),
            ["all", "db", "web"]
        );
        let rendered = render_for_node(&config, "linux", &[label("web")]);
        assert!(rendered["packs"]["web"].get("labels").is_none());
        for bad in [json!([]), json!("web"), json!(["-x"]), json!([1])] {
            let config = json!({"packs": {"p": {"labels": bad, "queries": {}}}});
            assert!(validate_config(&config).is_err(), "{config}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const PLATFORMS: [&str; 5] = ["linux", "darwin", "windows", "freebsd", ""];
    const FILTER_WORDS: [&str; 10] = [
        "linux", "darwin", "windows", "freebsd", "posix", "any", "all", "ubuntu", "centos",
        "solaris",
    ];

    /// A platform filter as people write them: one to three words, comma-separated.
    fn filter() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(
            proptest::collection::vec(proptest::sample::select(&FILTER_WORDS[..]), 1..3)
                .prop_map(|words| words.join(",")),
        )
    }

    fn queries() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map("[a-z]{1,8}", (filter(), 1u64..100_000), 0..8).prop_map(
            |queries| {
                queries
                    .into_iter()
                    .map(|(name, (platform, interval))| {
                        let mut query = json!({"query": "SELECT 1;", "interval": interval});
                        if let Some(platform) = platform {
                            query["platform"] = json!(platform);
                        }
                        (name, query)
                    })
                    .collect()
            },
        )
    }

    fn config() -> impl Strategy<Value = Value> {
        (
            queries(),
            proptest::collection::btree_map("[a-z]{1,6}", (filter(), queries()), 0..4),
        )
            .prop_map(|(schedule, packs)| {
                let packs: Map<String, Value> = packs
                    .into_iter()
                    .map(|(name, (platform, queries))| {
                        let mut pack = json!({"queries": queries});
                        if let Some(platform) = platform {
                            pack["platform"] = json!(platform);
                        }
                        (name, pack)
                    })
                    .collect();
                json!({"options": {"logger_tls_period": 10}, "schedule": schedule, "packs": packs})
            })
    }

    fn kept(entry: &Value, platform: &str) -> bool {
        entry
            .get("platform")
            .and_then(Value::as_str)
            .is_none_or(|filter| platform_matches(filter, platform))
    }

    proptest! {
        /// Rendering keeps exactly the entries meant for the platform, touches nothing else,
        /// and rendering twice changes nothing more.
        #[test]
        fn rendering_keeps_exactly_what_the_platform_runs(
            config in config(),
            platform in proptest::sample::select(&PLATFORMS[..]),
        ) {
            prop_assert!(validate_config(&config).is_ok());
            let rendered = render_for_node(&config, platform, &[]);
            prop_assert_eq!(&rendered["options"], &config["options"]);
            for (name, query) in config["schedule"].as_object().unwrap() {
                prop_assert_eq!(
                    rendered["schedule"].get(name).is_some(),
                    kept(query, platform),
                    "schedule.{}", name
                );
            }
            for (name, pack) in config["packs"].as_object().unwrap() {
                let rendered_pack = rendered["packs"].get(name);
                prop_assert_eq!(rendered_pack.is_some(), kept(pack, platform), "packs.{}", name);
                if let Some(rendered_pack) = rendered_pack {
                    for (query_name, query) in pack["queries"].as_object().unwrap() {
                        prop_assert_eq!(
                            rendered_pack["queries"].get(query_name) == Some(query),
                            kept(query, platform),
                            "packs.{}.queries.{}", name, query_name
                        );
                    }
                }
            }
            prop_assert_eq!(render_for_node(&rendered, platform, &[]), rendered.clone());
            if platform.is_empty() {
                prop_assert_eq!(rendered, config);
            }
        }
    }
}
