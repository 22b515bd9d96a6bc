# `sgt deploy` reads these (terraform output -json) to provision the environment.

output "table_prefix" {
  description = "storage = dynamodb://<this>"
  value       = module.data.table_prefix
}

output "secrets_prefix" {
  description = "secrets = ssm://<this>"
  value       = trimsuffix(module.data.enroll_secrets_path, "/enroll-secrets")
}

output "log_stream" {
  description = "log_sink = firehose://<this>"
  value       = module.data.log_stream_name
}

output "carve_bucket" {
  description = "blobs = s3://<this>"
  value       = module.data.carve_bucket
}

output "region" {
  description = "The environment's region."
  value       = var.region
}

output "lb_dns_name" {
  description = "Point the agents' hostname at this."
  value       = module.service.lb_dns_name
}
