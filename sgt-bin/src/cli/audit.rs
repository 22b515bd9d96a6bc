//! `sgt audit`: the audit log of changes made through the admin API.

use super::Connection;
use crate::admin_types::{page_limit, PageParams, PageRequest};

/// Prints the newest `limit` entries (at most a page's worth, 1000).
pub(super) async fn run(conn: &Connection, limit: usize) -> anyhow::Result<()> {
    let mut page = PageParams::default();
    page.ask_for(None, page_limit(Some(limit)));
    let entries = conn.client()?.audit_log(&page).await?;
    conn.show(&entries.items, &["at", "actor", "action", "target"]);
    Ok(())
}
