# The DynamoDB tables of one deployment. Names, keys, indexes and TTL attributes must match
# sgt-aws/src/dynamodb/tables.rs exactly; sgt-aws/tests/terraform_drift.rs checks that they do.
# On-demand capacity, point-in-time recovery, encryption with this environment's KMS key.

# Nodes: host details, key hash, last seen.
resource "aws_dynamodb_table" "nodes" {
  name                        = "${var.name_prefix}-nodes"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "environment"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }

  global_secondary_index {
    name            = "by-environment"
    hash_key        = "environment"
    range_key       = "id"
    projection_type = "KEYS_ONLY"
  }

  global_secondary_index {
    name            = "all-by-id"
    hash_key        = "kind"
    range_key       = "id"
    projection_type = "KEYS_ONLY"
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

# Unique lookups: node key and host identity to node id.
resource "aws_dynamodb_table" "lookups" {
  name                        = "${var.name_prefix}-lookups"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "lookup"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "lookup"
    type = "S"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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

# Environments and their osquery config documents.
resource "aws_dynamodb_table" "environments" {
  name                        = "${var.name_prefix}-environments"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "name"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "name"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }

  global_secondary_index {
    name            = "all-by-name"
    hash_key        = "kind"
    range_key       = "name"
    projection_type = "ALL"
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

# Live query campaigns.
resource "aws_dynamodb_table" "queries" {
  name                        = "${var.name_prefix}-queries"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }
  attribute {
    name = "created_key"
    type = "S"
  }
  attribute {
    name = "live"
    type = "S"
  }

  global_secondary_index {
    name            = "all-by-created"
    hash_key        = "kind"
    range_key       = "created_key"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "live"
    hash_key        = "live"
    range_key       = "id"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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

# Per-node delivery state and results of live queries.
resource "aws_dynamodb_table" "deliveries" {
  name                        = "${var.name_prefix}-deliveries"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "query_id"
  range_key                   = "node_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "query_id"
    type = "S"
  }
  attribute {
    name = "node_id"
    type = "S"
  }
  attribute {
    name = "pending_node"
    type = "S"
  }

  global_secondary_index {
    name            = "pending-by-node"
    hash_key        = "pending_node"
    range_key       = "query_id"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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

# File carve sessions.
resource "aws_dynamodb_table" "carves" {
  name                        = "${var.name_prefix}-carves"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "session_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "session_id"
    type = "S"
  }
  attribute {
    name = "node_id"
    type = "S"
  }
  attribute {
    name = "created_key"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }

  global_secondary_index {
    name            = "by-node"
    hash_key        = "node_id"
    range_key       = "created_key"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "all-by-created"
    hash_key        = "kind"
    range_key       = "created_key"
    projection_type = "ALL"
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

# Carve blocks received before assembly.
resource "aws_dynamodb_table" "carve_blocks" {
  name                        = "${var.name_prefix}-carve-blocks"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "session_id"
  range_key                   = "block_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "session_id"
    type = "S"
  }
  attribute {
    name = "block_id"
    type = "N"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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

# Admin API users (argon2id hashes).
resource "aws_dynamodb_table" "users" {
  name                        = "${var.name_prefix}-users"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "username"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "username"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }

  global_secondary_index {
    name            = "all-by-name"
    hash_key        = "kind"
    range_key       = "username"
    projection_type = "ALL"
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

# Admin API session and API tokens (SHA-256 hashes).
resource "aws_dynamodb_table" "tokens" {
  name                        = "${var.name_prefix}-tokens"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "token_hash"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "token_hash"
    type = "S"
  }
  attribute {
    name = "username"
    type = "S"
  }
  attribute {
    name = "created_key"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }

  global_secondary_index {
    name            = "by-user"
    hash_key        = "username"
    range_key       = "created_key"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "all-by-created"
    hash_key        = "kind"
    range_key       = "created_key"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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

# Audit log, counters and the revoked-keys feed.
resource "aws_dynamodb_table" "audit" {
  name                        = "${var.name_prefix}-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "stream"
  range_key                   = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "stream"
    type = "S"
  }
  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "expires_ttl"
    enabled        = true
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
