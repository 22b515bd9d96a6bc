# The task role: exactly the AWS calls `sgt serve` makes, each scoped to this environment's
# resources. tests/tests/terraform_drift.rs checks that these actions are exactly the SDK
# operations the server code calls (creating tables, buckets and streams is `sgt provision`'s
# job, run by the operator, and is not here).

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "Tables"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = concat(var.table_arns, [for arn in var.table_arns : "${arn}/index/*"])
  }
  statement {
    sid       = "ReadEnrollSecrets"
    actions   = ["ssm:GetParametersByPath"]
    resources = [var.enroll_secrets_path_arn]
  }
  statement {
    sid       = "WriteEnrollSecrets"
    actions   = ["ssm:DeleteParameter", "ssm:PutParameter"]
    resources = ["${var.enroll_secrets_path_arn}/*"]
  }
  statement {
    sid       = "Logs"
    actions   = ["firehose:PutRecordBatch"]
    resources = [var.log_stream_arn]
  }
  # The blob bucket's three folders: carves, log lines too large for a Firehose record, and
  # store values too large for a DynamoDB item.
  statement {
    sid = "Blobs"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = [
      "${var.carve_bucket_arn}/carves/*",
      "${var.carve_bucket_arn}/log-lines/*",
      "${var.carve_bucket_arn}/dynamodb-overflow/*",
    ]
  }
  # Encryption, not an API of sgt's own: the tables, bucket and stream use this key.
  statement {
    sid       = "UseKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "sgt-serve"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# The execution role: ECS pulls the image, writes the container's logs, and in passthrough
# mode reads the TLS certificate and key from SSM into the container's environment.
resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_tls" {
  count = var.tls_mode == "passthrough" ? 1 : 0
  statement {
    sid     = "ReadTlsMaterial"
    actions = ["ssm:GetParameters"]
    resources = [
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.tls_cert_parameter, "/")}",
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.tls_key_parameter, "/")}",
    ]
  }
  statement {
    sid       = "DecryptTlsMaterial"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution_tls" {
  count  = var.tls_mode == "passthrough" ? 1 : 0
  name   = "tls-material"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_tls[0].json
}
