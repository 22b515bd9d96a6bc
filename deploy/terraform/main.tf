# One sgt environment: the data layer and the service. `sgt deploy --env NAME` runs this with
# deploy/environments/NAME.tfvars and its state in S3 (key sgt/NAME/terraform.tfstate), so
# several environments live side by side in one account and region, or across regions.

terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
  # Filled in by `sgt deploy` from the environment's tfvars (state_bucket, region).
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = merge(var.tags, { "sgt:environment" = var.environment })
  }
}

locals {
  name_prefix = "${var.name}-${var.environment}"
}

module "data" {
  source                = "./modules/data"
  name_prefix           = local.name_prefix
  deletion_protection   = var.deletion_protection
  carve_retention_days  = var.carve_retention_days
  log_retention_days    = var.log_retention_days
  opensearch_domain_arn = var.opensearch_domain_arn
}

module "service" {
  source                    = "./modules/service"
  name_prefix               = local.name_prefix
  image                     = var.image
  cpu                       = var.task_cpu
  memory                    = var.task_memory
  min_tasks                 = var.min_tasks
  max_tasks                 = var.max_tasks
  vpc_id                    = var.vpc_id
  lb_subnet_ids             = var.lb_subnet_ids
  task_subnet_ids           = var.task_subnet_ids
  internal                  = var.internal
  agent_cidrs               = var.agent_cidrs
  tls_mode                  = var.tls_mode
  certificate_arn           = var.certificate_arn
  tls_cert_parameter        = var.tls_cert_parameter
  tls_key_parameter         = var.tls_key_parameter
  deletion_protection       = var.deletion_protection
  alarm_topic_arn           = var.alarm_topic_arn
  latency_p99_alarm_seconds = var.latency_p99_alarm_seconds
  table_arns                = module.data.table_arns
  table_prefix              = module.data.table_prefix
  enroll_secrets_path       = module.data.enroll_secrets_path
  enroll_secrets_path_arn   = module.data.enroll_secrets_path_arn
  carve_bucket              = module.data.carve_bucket
  carve_bucket_arn          = module.data.carve_bucket_arn
  log_stream_name           = module.data.log_stream_name
  log_records_per_line      = var.opensearch_domain_arn != null
  log_stream_arn            = module.data.log_stream_arn
  kms_key_arn               = module.data.kms_key_arn
}
