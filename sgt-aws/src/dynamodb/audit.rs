//! The audit log and enroll-secret usage: two streams of the `audit` table.

use async_trait::async_trait;
use sgt_core::store::{page_size, AuditEntry, AuditFilter, AuditStore, SecretUsage};
use sgt_core::types::UnixSeconds;
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::{
    attrs, classify, condition_failed, names, unless_condition_failed, DynamoStore, BACKEND,
};

/// The stream of audit entries, keyed by their time-sortable id.
const AUDIT_STREAM: &str = "audit";
/// The stream of per-secret usage counters, keyed by secret id.
const SECRET_USAGE_STREAM: &str = "secret-usage";

fn entry_from_item(stored: &Item) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: item::string(stored, "id")?.to_owned(),
        at: item::number(stored, "at")?,
        actor: item::string(stored, "actor")?.to_owned(),
        action: item::string(stored, "action")?.to_owned(),
        target: item::string(stored, "target")?.to_owned(),
        detail: item::json(item::string(stored, "detail")?, "audit detail")?,
    })
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let stored = attrs([
            ("stream", s(AUDIT_STREAM)),
            ("id", s(&entry.id)),
            ("at", n(entry.at)),
            ("actor", s(&entry.actor)),
            ("action", s(&entry.action)),
            ("target", s(&entry.target)),
            ("detail", s(item::to_json(&entry.detail)?)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.audit)
            .set_item(Some(stored))
            .condition_expression("attribute_not_exists(#id)")
            .set_expression_attribute_names(names(&["#id"]))
            .send()
            .await;
        unless_condition_failed(result, "audit entry")?
            .map(|_| ())
            .ok_or_else(|| Error::already_exists("audit entry"))
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let limit = page_size(limit);
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .scan_index_forward(false)
            .expression_attribute_values(":stream", s(AUDIT_STREAM));
        // Ids begin with the entry's time in milliseconds, so `since` bounds the key range
        // and the Query reads no older entries; the filter below keeps it exact.
        let since_key = filter
            .since
            .map(|since| format!("{:015}", since.clamp(0, i64::MAX / 1000) * 1000));
        if let (Some(since_key), Some(before)) = (&since_key, before) {
            if since_key.as_str() > before {
                return Ok(Vec::new());
            }
        }
        if let Some(since_key) = &since_key {
            query = query.expression_attribute_values(":since", s(since_key));
        }
        if let Some(before) = before {
            query = query.expression_attribute_values(":before", s(before));
        }
        // BETWEEN includes `before` itself: asked for one more, it is dropped below.
        let condition = match (before, &since_key) {
            (Some(_), Some(_)) => "#stream = :stream AND #id BETWEEN :since AND :before",
            (Some(_), None) => "#stream = :stream AND #id < :before",
            (None, Some(_)) => "#stream = :stream AND #id >= :since",
            (None, None) => "#stream = :stream",
        };
        let mut filters = Vec::new();
        if let Some(actor) = &filter.actor {
            filters.push("#actor = :actor");
            query = query.expression_attribute_values(":actor", s(actor));
        }
        if let Some(prefix) = &filter.action_prefix {
            filters.push("begins_with(#action, :action)");
            query = query.expression_attribute_values(":action", s(prefix));
        }
        if let Some(target) = &filter.target {
            filters.push("#target = :target");
            query = query.expression_attribute_values(":target", s(target));
        }
        if let Some(since) = filter.since {
            filters.push("#at >= :at");
            query = query.expression_attribute_values(":at", n(since));
        }
        let filter_expression = filters.join(" AND ");
        if !filters.is_empty() {
            query = query.filter_expression(&filter_expression);
        }
        // Without a filter, each page read is one page of the answer.
        if filters.is_empty() {
            query = query.limit(limit as i32 + 1);
        }
        let query = query
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition, &filter_expression]));
        let mut entries = Vec::with_capacity(limit + 1);
        for stored in self.query_up_to(query, "audit entry", limit + 1).await? {
            let entry = entry_from_item(&stored)?;
            if Some(entry.id.as_str()) != before {
                entries.push(entry);
            }
        }
        entries.truncate(limit);
        Ok(entries)
    }

    async fn record_secret_use(&self, secret_id: &str, now: UnixSeconds) -> Result<()> {
        let key = attrs([("stream", s(SECRET_USAGE_STREAM)), ("id", s(secret_id))]);
        // Usually the newest use: count it and move the time in one write.
        let counted = self
            .client
            .update_item()
            .table_name(&self.tables.audit)
            .set_key(Some(key.clone()))
            .update_expression("ADD #use_count :one SET #last_used_at = :now")
            .condition_expression("attribute_not_exists(#last_used_at) OR #last_used_at < :now")
            .set_expression_attribute_names(names(&["#use_count #last_used_at"]))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match counted {
            Ok(_) => return Ok(()),
            Err(e) if condition_failed(&e) => {}
            Err(e) => return Err(classify(BACKEND, "secret usage", e)),
        }
        // An older use arriving late: count it, keep the later time.
        self.client
            .update_item()
            .table_name(&self.tables.audit)
            .set_key(Some(key))
            .update_expression("ADD #use_count :one")
            .set_expression_attribute_names(names(&["#use_count"]))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| classify(BACKEND, "secret usage", e))?;
        Ok(())
    }

    async fn secret_usage(&self) -> Result<Vec<SecretUsage>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .key_condition_expression("#stream = :stream")
            .set_expression_attribute_names(names(&["#stream"]))
            .expression_attribute_values(":stream", s(SECRET_USAGE_STREAM));
        self.query_all(query, "secret usage")
            .await?
            .iter()
            .map(|stored| {
                Ok(SecretUsage {
                    secret_id: item::string(stored, "id")?.to_owned(),
                    use_count: u64::try_from(item::number(stored, "use_count")?)
                        .map_err(|_| item::corrupt("use count"))?,
                    last_used_at: item::number(stored, "last_used_at")?,
                })
            })
            .collect()
    }
}
