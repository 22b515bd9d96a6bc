//! Printing answers: human-readable tables, or JSON with `--json`.

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

use crate::admin_types::ResultView;

/// A cell's text: strings bare, null empty, the rest as JSON.
pub(super) fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the API field `key` holds a time as unix seconds: `at`, `last_seen` and every
/// `…_at`.
fn is_time_field(key: &str) -> bool {
    key == "at" || key == "last_seen" || key.ends_with("_at")
}

/// The text of field `key`: times as UTC RFC 3339 (`2026-11-27T06:36:21Z`), the rest as
/// [`cell`]. `--json` output keeps the unix seconds.
pub(super) fn field_cell(key: &str, value: &Value) -> String {
    match value.as_i64() {
        Some(seconds) if is_time_field(key) && seconds >= 0 => {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds as u64);
            humantime::format_rfc3339_seconds(time).to_string()
        }
        _ => cell(value),
    }
}

/// Prints `items` as a table of `columns` (JSON keys), headed by their names.
pub(super) fn table(items: &[Value], columns: &[&str]) {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns.iter().map(|c| c.to_uppercase()));
    for item in items {
        table.add_row(columns.iter().map(|c| field_cell(c, &item[*c])));
    }
    println!("{table}");
}

/// Prints a JSON value, pretty.
pub(super) fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Prints one object as `key: value` lines.
pub(super) fn fields(value: &Value) {
    if let Some(object) = value.as_object() {
        let width = object.keys().map(String::len).max().unwrap_or(0);
        for (key, v) in object {
            println!("{key:width$}  {}", field_cell(key, v));
        }
    } else {
        json(value);
    }
}

/// Prints query results: one line per row, the host first, then every column seen.
pub(super) fn results(results: &[ResultView]) {
    let mut columns: Vec<String> = Vec::new();
    for result in results {
        for row in &result.rows {
            for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    let mut table = Table::new();
    let mut header = vec!["HOST".to_owned()];
    header.extend(columns.iter().map(|c| c.to_uppercase()));
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for result in results {
        let host = match &result.host_identifier {
            Some(host) => host.to_string(),
            None => format!("(deleted node {})", result.node_id),
        };
        if result.status != 0 {
            let message = result.message.as_deref().unwrap_or_default();
            table.add_row(vec![host, format!("error: {message}")]);
            continue;
        }
        for row in &result.rows {
            let mut line = vec![host.clone()];
            line.extend(columns.iter().map(|c| cell(&row[c])));
            table.add_row(line);
        }
    }
    println!("{table}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_read_as_utc_and_other_numbers_stay_numbers() {
        assert_eq!(
            field_cell("last_seen", &json!(1_795_761_381)),
            "2026-11-27T06:36:21Z"
        );
        assert_eq!(field_cell("created_at", &json!(0)), "1970-01-01T00:00:00Z");
        assert_eq!(field_cell("expires_at", &Value::Null), "");
        assert_eq!(field_cell("use_count", &json!(3)), "3");
        assert_eq!(field_cell("id", &json!("abc")), "abc");
    }
}
