# The data layer of one sgt environment: DynamoDB tables (dynamodb.tf), the carve bucket and
# the log bucket (s3.tf), the Firehose stream (firehose.tf), and the KMS key that encrypts
# them. Enroll secrets are SSM SecureString parameters that sgt itself writes under
# `enroll_secrets_path`; this module only scopes access to that path.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  # Where sgt keeps enroll secrets (sgt-aws: enroll_secrets_path). The server is started
  # with secrets = ssm:///<name_prefix>.
  enroll_secrets_path = "/${var.name_prefix}/enroll-secrets"
  # S3 bucket names are global: the account and region keep environments apart.
  carve_bucket_name = "${var.name_prefix}-carves-${local.account_id}-${local.region}"
  log_bucket_name   = "${var.name_prefix}-logs-${local.account_id}-${local.region}"
  # S3 server access logs of the two buckets above.
  access_log_bucket_name = "${var.name_prefix}-access-${local.account_id}-${local.region}"
  log_stream_name        = "${var.name_prefix}-logs"
}

# One key per environment for DynamoDB, S3, Firehose and CloudWatch Logs.
resource "aws_kms_key" "this" {
  description             = "sgt ${var.name_prefix}: tables, carves, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:In a key policy the resource "*" is this key alone; write access is the account's, administered through IAM.
  #checkov:skip=CKV_AWS_356:In a key policy the resource "*" is this key alone.
  #checkov:skip=CKV_AWS_109:In a key policy the resource "*" is this key alone; permissions management is the account root's, as AWS's default key policy does.
  # The account administers the key through IAM, as with any key.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  # CloudWatch Logs encrypts the service's log group with it.
  statement {
    sid       = "CloudWatchLogsUse"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/sgt/${var.name_prefix}*"]
    }
  }
}
