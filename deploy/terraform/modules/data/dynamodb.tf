# The DynamoDB tables of one deployment. Names, keys, indexes and TTL attributes must match
# sgt-aws/src/dynamodb/tables.rs exactly; tests/tests/terraform_drift.rs checks that they do.
# Every table is on demand, with point-in-time recovery and this environment's KMS key.

locals {
  tables = {
    # Host details, key hash, last seen.
    nodes = {
      hash_key   = "id"
      range_key  = null
      attributes = { id = "S", environment = "S", kind = "S" }
      indexes = [
        { name = "by-environment", hash_key = "environment", range_key = "id", projection = "KEYS_ONLY" },
        { name = "all-by-id", hash_key = "kind", range_key = "id", projection = "KEYS_ONLY" },
      ]
      ttl_attribute = null
    }
    # Node key and host identity to node id.
    lookups = {
      hash_key      = "lookup"
      range_key     = null
      attributes    = { lookup = "S" }
      indexes       = []
      ttl_attribute = "expires_ttl"
    }
    # Environments and their osquery configs.
    environments = {
      hash_key   = "name"
      range_key  = null
      attributes = { name = "S", kind = "S" }
      indexes = [
        { name = "all-by-name", hash_key = "kind", range_key = "name", projection = "ALL" },
      ]
      ttl_attribute = null
    }
    # Live query campaigns.
    queries = {
      hash_key   = "id"
      range_key  = null
      attributes = { id = "S", kind = "S", created_key = "S", live = "S" }
      indexes = [
        { name = "all-by-created", hash_key = "kind", range_key = "created_key", projection = "ALL" },
        { name = "live", hash_key = "live", range_key = "id", projection = "ALL" },
      ]
      ttl_attribute = "expires_ttl"
    }
    # Per-node delivery state and results.
    deliveries = {
      hash_key   = "query_id"
      range_key  = "node_id"
      attributes = { query_id = "S", node_id = "S", pending_node = "S" }
      indexes = [
        { name = "pending-by-node", hash_key = "pending_node", range_key = "query_id", projection = "KEYS_ONLY" },
      ]
      ttl_attribute = "expires_ttl"
    }
    # File carve sessions.
    carves = {
      hash_key   = "session_id"
      range_key  = null
      attributes = { session_id = "S", node_id = "S", created_key = "S", kind = "S" }
      indexes = [
        { name = "by-node", hash_key = "node_id", range_key = "created_key", projection = "ALL" },
        { name = "all-by-created", hash_key = "kind", range_key = "created_key", projection = "ALL" },
      ]
      ttl_attribute = null
    }
    # Carve blocks before assembly.
    "carve-blocks" = {
      hash_key      = "session_id"
      range_key     = "block_id"
      attributes    = { session_id = "S", block_id = "N" }
      indexes       = []
      ttl_attribute = "expires_ttl"
    }
    # Saved queries, by name.
    "saved-queries" = {
      hash_key   = "name"
      range_key  = null
      attributes = { name = "S", kind = "S" }
      indexes = [
        { name = "all-by-name", hash_key = "kind", range_key = "name", projection = "ALL" },
      ]
      ttl_attribute = null
    }
    # Labels: each label's definition and one item per member.
    labels = {
      hash_key   = "label"
      range_key  = "member"
      attributes = { label = "S", member = "S", kind = "S" }
      indexes = [
        { name = "all-by-name", hash_key = "kind", range_key = "label", projection = "ALL" },
      ]
      ttl_attribute = null
    }
    # Admin API users.
    users = {
      hash_key   = "username"
      range_key  = null
      attributes = { username = "S", kind = "S" }
      indexes = [
        { name = "all-by-name", hash_key = "kind", range_key = "username", projection = "ALL" },
      ]
      ttl_attribute = null
    }
    # Session and API token hashes.
    tokens = {
      hash_key   = "token_hash"
      range_key  = null
      attributes = { token_hash = "S", username = "S", created_key = "S", kind = "S" }
      indexes = [
        { name = "by-user", hash_key = "username", range_key = "created_key", projection = "ALL" },
        { name = "all-by-created", hash_key = "kind", range_key = "created_key", projection = "ALL" },
      ]
      ttl_attribute = "expires_ttl"
    }
    # Audit log, counters, revoked-keys feed.
    audit = {
      hash_key      = "stream"
      range_key     = "id"
      attributes    = { stream = "S", id = "S" }
      indexes       = []
      ttl_attribute = "expires_ttl"
    }
  }
}

resource "aws_dynamodb_table" "this" {
  for_each                    = local.tables
  name                        = "${var.name_prefix}-${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  deletion_protection_enabled = var.deletion_protection

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.value.name
      hash_key        = global_secondary_index.value.hash_key
      range_key       = global_secondary_index.value.range_key
      projection_type = global_secondary_index.value.projection
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl_attribute == null ? [] : [each.value.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}
