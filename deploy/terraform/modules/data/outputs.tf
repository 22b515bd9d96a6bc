output "table_prefix" {
  description = "The DynamoDB table prefix: the server's storage = dynamodb://<this>."
  value       = var.name_prefix
}

output "table_arns" {
  description = "Every table's ARN."
  value       = [for table in aws_dynamodb_table.this : table.arn]
}

output "enroll_secrets_path" {
  description = "The SSM path enroll secrets live under."
  value       = local.enroll_secrets_path
}

output "enroll_secrets_path_arn" {
  description = "The ARN of that path (GetParametersByPath is authorised on the path itself)."
  value       = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.enroll_secrets_path}"
}

output "carve_bucket" {
  description = "The carve bucket: the server's blobs = s3://<this>."
  value       = aws_s3_bucket.carves.bucket
}

output "carve_bucket_arn" {
  description = "The carve bucket's ARN."
  value       = aws_s3_bucket.carves.arn
}

output "log_bucket" {
  description = "Where Firehose writes log records."
  value       = aws_s3_bucket.logs.bucket
}

output "log_stream_name" {
  description = "The Firehose stream: the server's log_sink = firehose://<this>."
  value       = local.log_stream_name
}

output "log_stream_arn" {
  description = "The Firehose stream's ARN."
  value       = "arn:${local.partition}:firehose:${local.region}:${local.account_id}:deliverystream/${local.log_stream_name}"
}

output "kms_key_arn" {
  description = "The environment's KMS key."
  value       = aws_kms_key.this.arn
}
