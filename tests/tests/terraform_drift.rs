//! No drift between the code and `deploy/terraform`: every DynamoDB table, index, key and TTL
//! attribute the store uses is declared there with the same names and types; the SSM path and
//! the Firehose stream are the code's; the blob folders the code writes are the ones the IAM
//! policy grants, and only those meant to expire do;
//! the container's settings are variables `sgt serve` reads; and the task role's IAM actions
//! are exactly the AWS SDK operations the server code calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, ObjectKey, TemplateExpr};
use sgt_aws::dynamodb::tables::{KeyType, Projection, TABLES};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn terraform(path: &str) -> Body {
    let file = repo().join("deploy/terraform").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{file:?} does not parse: {e}"))
}

/// `resource "KIND" "NAME" {…}` blocks (or `data`) of `body`, by name.
fn blocks<'a>(body: &'a Body, identifier: &str, kind: &str) -> BTreeMap<String, &'a Body> {
    body.blocks()
        .filter(|b| b.identifier() == identifier)
        .filter(|b| b.labels().first().map(|l| l.as_str()) == Some(kind))
        .map(|b| (b.labels()[1].as_str().to_owned(), b.body()))
        .collect()
}

fn nested<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == identifier)
}

/// The text of a string or template attribute, e.g. `${var.name_prefix}-nodes`.
fn text(body: &Body, key: &str) -> Option<String> {
    let attribute = body.attributes().find(|a| a.key() == key)?;
    expression_text(attribute.expr())
}

fn expression_text(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(template) => match template.as_ref() {
            TemplateExpr::QuotedString(s) => Some(s.clone()),
            TemplateExpr::Heredoc(_) => None,
        },
        Expression::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(body: &Body, key: &str) -> Vec<String> {
    match body.attributes().find(|a| a.key() == key).map(|a| a.expr()) {
        Some(Expression::Array(items)) => items.iter().filter_map(expression_text).collect(),
        Some(other) => vec![other.to_string()],
        None => Vec::new(),
    }
}

fn type_letter(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::String => "S",
        KeyType::Number => "N",
    }
}

#[test]
fn every_terraform_and_tfvars_file_parses() {
    let mut stack = vec![repo().join("deploy")];
    let mut parsed = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with(".terraform") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "tf" || e == "tfvars") {
                let text = std::fs::read_to_string(&path).unwrap();
                hcl::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                parsed += 1;
            }
        }
    }
    assert!(parsed >= 15, "{parsed} files");
}

#[test]
fn every_environment_file_sets_the_inputs_sgt_deploy_reads() {
    let dir = repo().join("deploy/environments");
    let mut environments = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".tfvars"))
        else {
            continue;
        };
        let body = hcl::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            text(&body, "environment").as_deref(),
            Some(name),
            "{path:?}"
        );
        for key in ["region", "state_bucket", "image", "vpc_id"] {
            assert!(text(&body, key).is_some(), "{path:?} sets {key}");
        }
        environments += 1;
    }
    assert!(environments >= 2);
}

/// The members of an HCL object, by key (`nodes = {…}` or `"carve-blocks" = {…}`).
fn members(expr: &Expression) -> BTreeMap<String, &Expression> {
    let Expression::Object(object) = expr else {
        panic!("an object, not {expr}");
    };
    object
        .iter()
        .map(|(key, value)| {
            let key = match key {
                ObjectKey::Identifier(id) => id.as_str().to_owned(),
                ObjectKey::Expression(e) => expression_text(e).expect("a string key"),
                other => panic!("an unexpected object key {other:?}"),
            };
            (key, value)
        })
        .collect()
}

#[test]
fn every_table_index_key_and_ttl_is_declared_as_the_store_uses_it() {
    let body = terraform("modules/data/dynamodb.tf");
    // The tables' keys, indexes and TTL are data (`locals.tables`) ...
    let locals = nested(&body, "locals").next().expect("locals").body();
    let tables = members(
        locals
            .attributes()
            .find(|a| a.key() == "tables")
            .expect("locals.tables")
            .expr(),
    );
    assert_eq!(
        tables.len(),
        TABLES.len(),
        "terraform declares exactly the store's tables: {:?}",
        tables.keys()
    );
    for spec in TABLES {
        let name = spec.suffix;
        let table = members(
            tables
                .get(name)
                .unwrap_or_else(|| panic!("table {name} is not declared")),
        );
        let string = |key: &str| table.get(key).and_then(|e| expression_text(e));
        assert_eq!(
            string("hash_key").as_deref(),
            Some(spec.hash.name),
            "{name}"
        );
        assert_eq!(
            string("range_key").as_deref(),
            spec.range.map(|r| r.name),
            "{name}"
        );
        // Attribute definitions: exactly the key attributes of the table and its indexes.
        let mut expected = BTreeMap::new();
        for key in [Some(spec.hash), spec.range]
            .into_iter()
            .chain(spec.indexes.iter().flat_map(|i| [Some(i.hash), i.range]))
            .flatten()
        {
            expected.insert(key.name.to_owned(), type_letter(key.key_type).to_owned());
        }
        let attributes: BTreeMap<String, String> = members(table["attributes"])
            .into_iter()
            .map(|(k, v)| (k, expression_text(v).unwrap()))
            .collect();
        assert_eq!(attributes, expected, "{name}: attribute definitions");
        // Global secondary indexes.
        let expected: BTreeSet<(String, String, Option<String>, String)> = spec
            .indexes
            .iter()
            .map(|i| {
                (
                    i.name.to_owned(),
                    i.hash.name.to_owned(),
                    i.range.map(|r| r.name.to_owned()),
                    match i.projection {
                        Projection::KeysOnly => "KEYS_ONLY",
                        Projection::All => "ALL",
                    }
                    .to_owned(),
                )
            })
            .collect();
        let Expression::Array(declared) = table["indexes"] else {
            panic!("{name}: indexes is a list");
        };
        let indexes: BTreeSet<_> = declared
            .iter()
            .map(|g| {
                let g = members(g);
                let field = |key: &str| g.get(key).and_then(|e| expression_text(e));
                (
                    field("name").unwrap(),
                    field("hash_key").unwrap(),
                    field("range_key"),
                    field("projection").unwrap(),
                )
            })
            .collect();
        assert_eq!(indexes, expected, "{name}: indexes");
        assert_eq!(
            string("ttl_attribute").as_deref(),
            spec.ttl_attribute,
            "{name}: ttl"
        );
    }

    // ... and one resource makes each table from them, with what every table shares.
    let resources = blocks(&body, "resource", "aws_dynamodb_table");
    assert_eq!(resources.len(), 1, "one resource for every table");
    let table = resources.values().next().unwrap();
    let expr = |key: &str| {
        table
            .attributes()
            .find(|a| a.key() == key)
            .unwrap_or_else(|| panic!("{key}"))
            .expr()
            .to_string()
    };
    assert_eq!(expr("for_each"), "local.tables");
    assert_eq!(
        text(table, "name").as_deref(),
        Some("${var.name_prefix}-${each.key}")
    );
    assert_eq!(
        text(table, "billing_mode").as_deref(),
        Some("PAY_PER_REQUEST")
    );
    for (key, source) in [
        ("hash_key", "each.value.hash_key"),
        ("range_key", "each.value.range_key"),
    ] {
        assert_eq!(expr(key), source);
    }
    let dynamic: BTreeSet<&str> = nested(table, "dynamic")
        .map(|d| d.labels()[0].as_str())
        .collect();
    assert_eq!(
        dynamic,
        BTreeSet::from(["attribute", "global_secondary_index", "ttl"])
    );
    for block in nested(table, "dynamic") {
        let content = nested(block.body(), "content")
            .next()
            .expect("content")
            .body();
        let each = block.labels()[0].as_str();
        let fields: BTreeMap<String, String> = content
            .attributes()
            .map(|a| (a.key().to_owned(), a.expr().to_string()))
            .collect();
        let expected: &[(&str, &str)] = match each {
            "attribute" => &[("name", "attribute.key"), ("type", "attribute.value")],
            "global_secondary_index" => &[
                ("name", "global_secondary_index.value.name"),
                ("hash_key", "global_secondary_index.value.hash_key"),
                ("range_key", "global_secondary_index.value.range_key"),
                ("projection_type", "global_secondary_index.value.projection"),
            ],
            _ => &[("attribute_name", "ttl.value"), ("enabled", "true")],
        };
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(fields, expected, "dynamic {each}");
    }
    let pitr: Vec<_> = nested(table, "point_in_time_recovery")
        .map(|p| text(p.body(), "enabled"))
        .collect();
    assert_eq!(pitr, vec![Some("true".to_owned())], "PITR");
    assert_eq!(nested(table, "server_side_encryption").count(), 1);
}

#[test]
fn the_ssm_path_and_stream_match_the_code() {
    let data = terraform("modules/data/main.tf");
    let locals = nested(&data, "locals").next().expect("locals").body();
    assert_eq!(
        text(locals, "enroll_secrets_path"),
        Some(sgt_aws::enroll_secrets_path("${var.name_prefix}"))
    );
    assert_eq!(
        text(locals, "log_stream_name").as_deref(),
        Some("${var.name_prefix}-logs")
    );
    let firehose = terraform("modules/data/firehose.tf");
    let streams = blocks(
        &firehose,
        "resource",
        "aws_kinesis_firehose_delivery_stream",
    );
    assert!(!streams.is_empty());
    for (name, stream) in streams {
        let value = stream.attributes().find(|a| a.key() == "name").unwrap();
        assert_eq!(value.expr().to_string(), "local.log_stream_name", "{name}");
    }
}

#[test]
fn every_blob_folder_the_code_writes_is_granted_and_only_carves_and_log_lines_expire() {
    // The server's blob store is the carve bucket, with one folder per kind of blob.
    let block = sgt_bin::server::services::agent::carve_block_key(
        &sgt_core::types::CarveSessionId::parse("s1").unwrap(),
        0,
    );
    let carves = block.as_str().split('/').next().unwrap();
    let env = sgt_core::types::EnvironmentName::default_name();
    let line = sgt_bin::server::services::agent::oversize_line_key(&env, "ab").unwrap();
    let log_lines = line.as_str().split('/').next().unwrap();
    let overflow = sgt_aws::dynamodb::OVERFLOW_PREFIX;

    let iam = terraform("modules/service/iam.tf");
    let task = blocks(&iam, "data", "aws_iam_policy_document")["task"];
    let statement = nested(task, "statement")
        .find(|s| text(s.body(), "sid").as_deref() == Some("Blobs"))
        .expect("Blobs statement");
    let mut granted = strings(statement.body(), "resources");
    granted.sort();
    let mut written: Vec<String> = [carves, log_lines, overflow]
        .iter()
        .map(|folder| format!("${{var.carve_bucket_arn}}/{folder}/*"))
        .collect();
    written.sort();
    assert_eq!(granted, written);

    // Carves expire with the carve retention and oversize lines with the log retention; store
    // values never by age (items refer to them): no other rule expires anything.
    let s3 = terraform("modules/data/s3.tf");
    let lifecycle = blocks(&s3, "resource", "aws_s3_bucket_lifecycle_configuration")["carves"];
    let mut expiring = BTreeMap::new();
    for rule in nested(lifecycle, "rule") {
        let filter = nested(rule.body(), "filter").next().expect("filter");
        let prefix = text(filter.body(), "prefix").unwrap_or_default();
        for expiration in nested(rule.body(), "expiration") {
            let days = expiration.body().attributes().find(|a| a.key() == "days");
            expiring.insert(prefix.clone(), days.map(|a| a.expr().to_string()));
        }
    }
    assert_eq!(
        expiring,
        BTreeMap::from([
            (
                format!("{carves}/"),
                Some("var.carve_retention_days".to_owned())
            ),
            (
                format!("{log_lines}/"),
                Some("var.log_retention_days".to_owned())
            ),
        ])
    );
    assert!(!overflow.starts_with(carves) && !overflow.starts_with(log_lines));
}

#[test]
fn the_container_settings_are_ones_sgt_serve_reads() {
    let service = terraform("modules/service/main.tf");
    let locals = nested(&service, "locals").next().expect("locals").body();
    let rendered = locals
        .attributes()
        .filter(|a| a.key() == "environment" || a.key() == "secrets")
        .map(|a| a.expr().to_string())
        .collect::<String>();
    let mut names = BTreeSet::new();
    for piece in rendered.split("name = \"").skip(1) {
        names.insert(piece.split('"').next().unwrap().to_owned());
    }
    assert!(names.contains("SGT_STORAGE"), "{names:?}");
    let main = std::fs::read_to_string(repo().join("sgt-bin/src/main.rs")).unwrap();
    for name in names {
        if name.starts_with("AWS_") {
            continue; // read by the AWS SDK
        }
        assert!(
            main.contains(&format!("env = \"{name}\"")) || main.contains(&format!("\"{name}\"")),
            "{name} is set in the task definition but sgt-bin does not read it"
        );
    }
}

#[test]
fn metrics_are_answered_only_inside_the_vpc() {
    // The listener faces `agent_cidrs` (0.0.0.0/0 by default) on both balancer kinds, so
    // sgt itself must refuse /metrics to callers outside the VPC.
    let service = terraform("modules/service/main.tf");
    let locals = nested(&service, "locals").next().expect("locals").body();
    let environment = locals
        .attributes()
        .find(|a| a.key() == "environment")
        .expect("environment")
        .expr()
        .to_string();
    let setting = environment
        .split("name = \"SGT_METRICS_ALLOW\"")
        .nth(1)
        .expect("the task sets SGT_METRICS_ALLOW");
    let value = setting.split('}').next().unwrap();
    assert!(
        value.contains("data.aws_vpc.this.cidr_block"),
        "SGT_METRICS_ALLOW is not the VPC's range: {value}"
    );
    assert!(blocks(&service, "data", "aws_vpc").contains_key("this"));
}

/// Every operation of each AWS SDK the server uses, from the SDK crates' own sources
/// (`src/operation/<name>/`), located through `cargo metadata`.
fn sdk_operations() -> BTreeMap<&'static str, BTreeSet<String>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut operations = BTreeMap::new();
    for (service, package) in [
        ("dynamodb", "aws-sdk-dynamodb"),
        ("s3", "aws-sdk-s3"),
        ("ssm", "aws-sdk-ssm"),
        ("firehose", "aws-sdk-firehose"),
    ] {
        let manifest = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == package)
            .unwrap_or_else(|| panic!("{package} in cargo metadata"))["manifest_path"]
            .as_str()
            .unwrap()
            .to_owned();
        let dir = Path::new(&manifest).parent().unwrap().join("src/operation");
        let names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.len() > 10, "{package}: {names:?}");
        operations.insert(service, names);
    }
    operations
}

/// `.name()` calls in `text`.
fn method_calls(text: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for piece in text.split('.').skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && piece[name.len()..].starts_with("()") {
            calls.insert(name);
        }
    }
    calls
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The IAM actions an SDK operation needs.
fn iam_actions(service: &str, operation: &str) -> Vec<String> {
    let actions: Vec<&str> = match (service, operation) {
        // A transaction needs the action of each kind of item it writes.
        ("dynamodb", "transact_write_items") => vec!["PutItem", "UpdateItem", "DeleteItem"],
        ("s3", "head_object") => vec!["GetObject"],
        ("s3", "create_multipart_upload" | "upload_part" | "complete_multipart_upload") => {
            vec!["PutObject"]
        }
        ("s3", "list_objects_v2" | "head_bucket") => vec!["ListBucket"],
        ("s3", "delete_objects") => vec!["DeleteObject"],
        _ => return vec![format!("{service}:{}", pascal(operation))],
    };
    actions.iter().map(|a| format!("{service}:{a}")).collect()
}

#[test]
fn the_task_role_grants_exactly_the_sdk_calls_the_server_makes() {
    let operations = sdk_operations();
    // Which SDK each source file of sgt-aws calls. Creating tables, buckets and streams is
    // `sgt provision`'s, run with the operator's credentials, not the server's.
    let src = repo().join("sgt-aws/src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut needed = BTreeSet::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let services: &[&str] = match relative.as_str() {
            "provision.rs" => continue,
            r if r.starts_with("dynamodb/") => &["dynamodb"],
            "blobs.rs" => &["s3"],
            "secrets.rs" => &["ssm"],
            "firehose.rs" => &["firehose"],
            _ => &[],
        };
        let calls = method_calls(&std::fs::read_to_string(&file).unwrap());
        for (service, ops) in &operations {
            let called: Vec<&String> = calls.intersection(ops).collect();
            if services.contains(service) {
                for op in called {
                    needed.extend(iam_actions(service, op));
                }
            } else {
                assert!(
                    called.is_empty(),
                    "{relative} calls {service} operations {called:?}: map the file to its service here"
                );
            }
        }
    }
    assert!(needed.contains("dynamodb:Query"), "{needed:?}");

    let iam = terraform("modules/service/iam.tf");
    let task = blocks(&iam, "data", "aws_iam_policy_document")["task"];
    let mut granted = BTreeSet::new();
    for statement in nested(task, "statement") {
        let statement = statement.body();
        let resources = strings(statement, "resources");
        let sid = text(statement, "sid").unwrap_or_default();
        assert!(
            !resources.iter().any(|r| r == "*"),
            "statement {sid} is scoped to the environment's resources"
        );
        for action in strings(statement, "actions") {
            // Encryption keys are not an API of sgt's own; they are granted on one key.
            if action.starts_with("kms:") {
                assert_eq!(sid, "UseKey");
                continue;
            }
            granted.insert(action);
        }
    }
    assert_eq!(
        granted, needed,
        "the task role's actions are exactly the server's SDK calls"
    );
}
