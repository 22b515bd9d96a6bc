//! `sgt audit`: the audit log of changes made through the admin API, filtered.

use super::Connection;
use crate::admin_types::{page_limit, AuditListParams, PageRequest, MAX_PAGE_LIMIT};
use sgt_core::types::{now_unix, UnixSeconds};

/// Prints the newest `limit` entries that pass the filters in `params`, page after page.
pub(super) async fn run(
    conn: &Connection,
    mut params: AuditListParams,
    limit: usize,
) -> anyhow::Result<()> {
    let api = conn.client()?;
    let mut entries = Vec::new();
    let mut cursor = None;
    while entries.len() < limit {
        let wanted = (limit - entries.len()).min(MAX_PAGE_LIMIT);
        params.ask_for(cursor, page_limit(Some(wanted)));
        let page = api.audit_log(&params).await?;
        entries.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    conn.show(&entries, &["at", "actor", "action", "target"]);
    Ok(())
}

/// `--since`: a duration back from now (`2h`, `7days`) or a time (`2026-12-01T10:00:00Z`).
pub(super) fn since_arg(value: &str) -> Result<UnixSeconds, String> {
    if let Ok(ago) = humantime::parse_duration(value) {
        return Ok(now_unix() - ago.as_secs() as i64);
    }
    humantime::parse_rfc3339_weak(value)
        .map_err(|_| {
            format!("{value:?} is neither a duration (2h) nor a time (2026-12-01T10:00:00Z)")
        })
        .and_then(|time| {
            time.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .map_err(|_| format!("{value:?} is before 1970"))
        })
}
