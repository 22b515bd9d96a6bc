# The log stream: sgt puts each acknowledged batch here (PutRecordBatch) and answers the agent
# only once Firehose accepted every record. Firehose delivers to the log bucket, gzipped,
# and with `opensearch_domain_arn` set, indexes into OpenSearch too (S3 keeps every record).

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/sgt/${var.name_prefix}/firehose"
  retention_in_days = 365
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_stream" "firehose_s3" {
  name           = "s3-delivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_cloudwatch_log_stream" "firehose_opensearch" {
  count          = var.opensearch_domain_arn == null ? 0 : 1
  name           = "opensearch-delivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_kinesis_firehose_delivery_stream" "to_s3" {
  count       = var.opensearch_domain_arn == null ? 1 : 0
  name        = local.log_stream_name
  destination = "extended_s3"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = aws_kms_key.this.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = aws_s3_bucket.logs.arn
    prefix              = "osquery/!{timestamp:yyyy/MM/dd}/"
    error_output_prefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
    buffering_size      = 64
    buffering_interval  = 60
    compression_format  = "GZIP"
    kms_key_arn         = aws_kms_key.this.arn

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose_s3.name
    }
  }

  tags = var.tags
}

resource "aws_kinesis_firehose_delivery_stream" "to_opensearch" {
  count       = var.opensearch_domain_arn == null ? 0 : 1
  name        = local.log_stream_name
  destination = "opensearch"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = aws_kms_key.this.arn
  }

  opensearch_configuration {
    domain_arn     = var.opensearch_domain_arn
    role_arn       = aws_iam_role.firehose.arn
    index_name     = "osquery"
    s3_backup_mode = "AllDocuments"

    s3_configuration {
      role_arn           = aws_iam_role.firehose.arn
      bucket_arn         = aws_s3_bucket.logs.arn
      prefix             = "osquery/"
      buffering_size     = 64
      buffering_interval = 60
      compression_format = "GZIP"
      kms_key_arn        = aws_kms_key.this.arn
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose_opensearch[0].name
    }
  }

  tags = var.tags
}

# Firehose's own role: write to the log bucket with the key, log delivery errors, and
# index into OpenSearch when configured.
resource "aws_iam_role" "firehose" {
  name               = "${var.name_prefix}-firehose"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid = "WriteLogBucket"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:GetObject",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:PutObject",
    ]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
  }
  statement {
    sid       = "UseKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
  statement {
    sid       = "LogDeliveryErrors"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:*"]
  }
  dynamic "statement" {
    for_each = var.opensearch_domain_arn == null ? [] : [var.opensearch_domain_arn]
    content {
      sid       = "IndexIntoOpenSearch"
      actions   = ["es:DescribeDomain", "es:DescribeDomains", "es:DescribeDomainConfig", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpGet"]
      resources = [statement.value, "${statement.value}/*"]
    }
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "delivery"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}
