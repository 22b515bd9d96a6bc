# Three buckets: carves (the server's blobs: carve archives and blocks uploaded by agents,
# oversize log lines, large store values), logs (what Firehose delivers), and access logs of
# the other two. All private, TLS-only and versioned; all but the store values expire.
# Carves and logs are encrypted with the environment's key, access logs with S3's own key
# (server access logging cannot write to a bucket whose default encryption is SSE-KMS).

resource "aws_s3_bucket" "carves" {
  bucket = local.carve_bucket_name
  tags   = var.tags
  #checkov:skip=CKV_AWS_144:Carves are evidence copies with a retention of days; replicating them to another region is the operator's choice, not a default.
  #checkov:skip=CKV2_AWS_62:Nothing consumes carve events; sgt reads the table, not bucket notifications.
}

resource "aws_s3_bucket" "logs" {
  bucket = local.log_bucket_name
  tags   = var.tags
  #checkov:skip=CKV_AWS_144:Log records are also in the SIEM/OpenSearch of choice; cross-region replication is opt-in.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events by default; add notifications when a SIEM pulls from here.
}

resource "aws_s3_bucket" "access_logs" {
  bucket = local.access_log_bucket_name
  tags   = var.tags
  #checkov:skip=CKV_AWS_144:Access logs are an audit trail of this region's buckets; replicating them is opt-in.
  #checkov:skip=CKV2_AWS_62:Nothing consumes access-log events.
  #checkov:skip=CKV_AWS_18:This is the access-log bucket itself; logging it into itself would loop.
  #checkov:skip=CKV_AWS_145:S3 server access logging can only write to a bucket encrypted with SSE-S3, not SSE-KMS.
}

# What every bucket gets alike: no public access, no ACLs, versioning, default encryption
# (the environment's key, but S3's own for access logs), and the TLS-only policy below.
locals {
  buckets = {
    carves      = aws_s3_bucket.carves
    logs        = aws_s3_bucket.logs
    access_logs = aws_s3_bucket.access_logs
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = local.buckets
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  rule {
    # Access logs arrive through the bucket policy's grant to logging.s3.amazonaws.com.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = each.key == "access_logs" ? "AES256" : "aws:kms"
      kms_master_key_id = each.key == "access_logs" ? null : aws_kms_key.this.arn
    }
    bucket_key_enabled = each.key != "access_logs"
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}

resource "aws_s3_bucket_logging" "carves" {
  bucket        = aws_s3_bucket.carves.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "carves/"
}

resource "aws_s3_bucket_logging" "logs" {
  bucket        = aws_s3_bucket.logs.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "logs/"
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# The carve bucket is the server's blob store, with a folder per lifetime: carves expire
# with the carve retention, oversize log lines with the log retention, and store values
# (dynamodb-overflow/) never by age, because live items refer to them.
resource "aws_s3_bucket_lifecycle_configuration" "carves" {
  bucket = aws_s3_bucket.carves.id
  rule {
    id     = "every-object"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  rule {
    id     = "expire-carves"
    status = "Enabled"
    filter {
      prefix = "carves/"
    }
    expiration {
      days = var.carve_retention_days
    }
  }
  rule {
    id     = "expire-oversize-log-lines"
    status = "Enabled"
    filter {
      prefix = "log-lines/"
    }
    expiration {
      days = var.log_retention_days
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "archive-then-expire"
    status = "Enabled"
    filter {}
    transition {
      days          = 30
      storage_class = "GLACIER_IR"
    }
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Refuse plain-HTTP access to every bucket.
data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "access_logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

