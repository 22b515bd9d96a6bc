//! Carve sessions (the `carves` table) and which blocks arrived (`carve-blocks`, one item per
//! block; the bytes are in the blob store).

use async_trait::async_trait;
use sgt_core::store::{BlockRecorded, CarveSession, CarveStatus, CarveStore, NewCarve};
use sgt_core::types::{CarveSessionId, NodeId, UnixSeconds};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::tables::TTL_ATTRIBUTE;
use super::writes::{build_put, build_update, put, update};
use super::{
    attrs, created_key, failed_condition_at, names, unless_condition_failed, DynamoStore,
    RACE_RETRIES,
};

/// Block markers are only needed while a carve is arriving; TTL removes them after this.
const BLOCK_MARKER_RETENTION_SECONDS: i64 = 7 * 24 * 3600;

fn carve_key(id: &str) -> Item {
    attrs([("session_id", s(id))])
}

fn carve_from_item(stored: &Item) -> Result<CarveSession> {
    let count = |name: &str| -> Result<u64> {
        u64::try_from(item::number(stored, name)?).map_err(|_| item::corrupt(name))
    };
    Ok(CarveSession {
        carve: NewCarve {
            session_id: item::parsed(stored, "session_id", CarveSessionId::parse)?,
            node_id: item::parsed(stored, "node_id", NodeId::parse)?,
            carve_guid: item::string(stored, "carve_guid")?.to_owned(),
            request_id: item::string(stored, "request_id")?.to_owned(),
            block_count: count("block_count")?,
            block_size: count("block_size")?,
            carve_size: count("carve_size")?,
            created_at: item::number(stored, "created_at")?,
        },
        status: CarveStatus::parse(item::string(stored, "status")?)
            .ok_or_else(|| item::corrupt("carve status"))?,
        blocks_received: count("blocks_received")?,
        sha256: item::optional_string(stored, "sha256").map(str::to_owned),
        finished_at: item::optional_number(stored, "finished_at")?,
    })
}

fn number_of(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid_input(format!("{what} is too large")))
}

#[async_trait]
impl CarveStore for DynamoStore {
    async fn create_carve(&self, carve: &NewCarve) -> Result<()> {
        let stored = attrs([
            ("session_id", s(carve.session_id.as_str())),
            ("kind", s("carve")),
            ("node_id", s(carve.node_id.as_str())),
            ("carve_guid", s(&carve.carve_guid)),
            ("request_id", s(&carve.request_id)),
            (
                "block_count",
                n(number_of(carve.block_count, "block count")?),
            ),
            ("block_size", n(number_of(carve.block_size, "block size")?)),
            ("carve_size", n(number_of(carve.carve_size, "carve size")?)),
            ("created_at", n(carve.created_at)),
            (
                "created_key",
                s(created_key(carve.created_at, carve.session_id.as_str())),
            ),
            ("status", s(CarveStatus::Receiving.as_str())),
            ("blocks_received", n(0)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.carves)
            .set_item(Some(stored))
            .condition_expression("attribute_not_exists(#session_id)")
            .set_expression_attribute_names(names(&["#session_id"]))
            .send()
            .await;
        unless_condition_failed(result, "carve")?
            .map(|_| ())
            .ok_or_else(|| Error::already_exists("carve"))
    }

    async fn carve(&self, id: &CarveSessionId) -> Result<CarveSession> {
        let stored = self
            .get_item(&self.tables.carves, carve_key(id.as_str()), true)
            .await?
            .ok_or_else(|| Error::not_found("carve"))?;
        carve_from_item(&stored)
    }

    async fn record_carve_block(
        &self,
        id: &CarveSessionId,
        block_id: u64,
    ) -> Result<BlockRecorded> {
        let block = n(number_of(block_id, "block id")?);
        for _ in 0..RACE_RETRIES {
            let session = self.carve(id).await?;
            let received = number_of(session.blocks_received, "block count")?;
            // The marker and the count move together, and the count only from the value just
            // read: so exactly one caller sees each new count, the last one included.
            let marker = attrs([
                ("session_id", s(id.as_str())),
                ("block_id", block.clone()),
                (
                    TTL_ATTRIBUTE,
                    n(session
                        .carve
                        .created_at
                        .saturating_add(BLOCK_MARKER_RETENTION_SECONDS)),
                ),
            ]);
            let writes = vec![
                put(build_put(
                    &self.tables.carve_blocks,
                    marker,
                    Some("attribute_not_exists(#session_id)"),
                    None,
                )?),
                update(build_update(
                    &self.tables.carves,
                    carve_key(id.as_str()),
                    "SET #blocks_received = :next",
                    Some("#blocks_received = :received"),
                    attrs([(":next", n(received + 1)), (":received", n(received))]),
                )?),
            ];
            match self.transact("carve block", writes).await? {
                Ok(()) => {
                    return Ok(BlockRecorded {
                        newly_recorded: true,
                        blocks_received: session.blocks_received + 1,
                    })
                }
                Err(reasons) if failed_condition_at(&reasons, 0) => {
                    // Recorded before, by a transaction that also counted it: read that count.
                    return Ok(BlockRecorded {
                        newly_recorded: false,
                        blocks_received: self.carve(id).await?.blocks_received,
                    });
                }
                Err(reasons) if reasons.is_empty() => {
                    // No reasons given: tell a resent block from a lost race by reading.
                    let marker = self
                        .get_item(
                            &self.tables.carve_blocks,
                            attrs([("session_id", s(id.as_str())), ("block_id", block.clone())]),
                            true,
                        )
                        .await?;
                    if marker.is_some() {
                        return Ok(BlockRecorded {
                            newly_recorded: false,
                            blocks_received: self.carve(id).await?.blocks_received,
                        });
                    }
                }
                // Another block was counted since we read: read again.
                Err(_) => {}
            }
        }
        Err(Error::unavailable(
            "dynamodb: carve block kept conflicting with concurrent blocks; try again",
        ))
    }

    async fn finish_carve(
        &self,
        id: &CarveSessionId,
        status: CarveStatus,
        sha256: Option<&str>,
        now: UnixSeconds,
    ) -> Result<()> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.carves)
            .set_key(Some(carve_key(id.as_str())))
            .condition_expression("attribute_exists(#session_id)")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", n(now));
        let update = match sha256 {
            Some(hash) => {
                request = request.expression_attribute_values(":sha256", s(hash));
                "SET #status = :status, #finished_at = :now, #sha256 = :sha256"
            }
            None => "SET #status = :status, #finished_at = :now REMOVE #sha256",
        };
        let result = request
            .update_expression(update)
            .set_expression_attribute_names(names(&[update, "#session_id"]))
            .send()
            .await;
        unless_condition_failed(result, "carve")?
            .map(|_| ())
            .ok_or_else(|| Error::not_found("carve"))
    }

    async fn list_carves(&self, node: Option<&NodeId>) -> Result<Vec<CarveSession>> {
        let (index, condition, partition) = match node {
            Some(node) => ("by-node", "#node_id = :partition", node.as_str()),
            None => ("all-by-created", "#kind = :partition", "carve"),
        };
        let query = self
            .client
            .query()
            .table_name(&self.tables.carves)
            .index_name(index)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .expression_attribute_values(":partition", s(partition))
            .scan_index_forward(false);
        self.query_all(query, "carve")
            .await?
            .iter()
            .map(carve_from_item)
            .collect()
    }
}
