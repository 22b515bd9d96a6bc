variable "environment" {
  description = "The environment's name (prod, dev, corp, ...); part of every resource name."
  type        = string
}

variable "name" {
  description = "The deployment's name; resources are named <name>-<environment>-…"
  type        = string
  default     = "sgt"
}

variable "region" {
  description = "The AWS region of this environment."
  type        = string
}

variable "state_bucket" {
  description = "The S3 bucket holding Terraform state; read by `sgt deploy` for `terraform init`."
  type        = string
}

variable "image" {
  description = "The sgt container image (see Dockerfile)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC to run in."
  type        = string
}

variable "lb_subnet_ids" {
  description = "Subnets of the load balancer, in at least two zones."
  type        = list(string)
}

variable "task_subnet_ids" {
  description = "Private subnets of the tasks, in at least two zones."
  type        = list(string)
}

variable "internal" {
  description = "An internal load balancer."
  type        = bool
  default     = false
}

variable "agent_cidrs" {
  description = "Addresses agents and operators connect from."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tls_mode" {
  description = "\"alb\" (ACM certificate at the balancer) or \"passthrough\" (sgt serve's own certificate from SSM)."
  type        = string
  default     = "alb"
}

variable "certificate_arn" {
  description = "ACM certificate for tls_mode = alb."
  type        = string
  default     = null
}

variable "tls_cert_parameter" {
  description = "SSM SecureString with the PEM certificate chain, for tls_mode = passthrough."
  type        = string
  default     = null
}

variable "tls_key_parameter" {
  description = "SSM SecureString with the PEM private key, for tls_mode = passthrough."
  type        = string
  default     = null
}

variable "task_cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 1024
}

variable "task_memory" {
  description = "Fargate memory per task, MiB."
  type        = number
  default     = 2048
}

variable "min_tasks" {
  description = "Tasks always running."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Tasks autoscaling may reach."
  type        = number
  default     = 10
}

variable "deletion_protection" {
  description = "Protect tables and the balancer from deletion."
  type        = bool
  default     = true
}

variable "carve_retention_days" {
  description = "Days carves are kept."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days log records are kept in S3."
  type        = number
  default     = 365
}

variable "opensearch_domain_arn" {
  description = "OpenSearch domain to index logs into as well; null for S3 only."
  type        = string
  default     = null
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarms; null for none."
  type        = string
  default     = null
}

variable "latency_p99_alarm_seconds" {
  description = "p99 latency alarm threshold (alb mode)."
  type        = number
  default     = 0.5
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
