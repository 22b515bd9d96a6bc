variable "name_prefix" {
  description = "Prefix of every resource name; the same as the data module's."
  type        = string
}

variable "image" {
  description = "The sgt container image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/sgt:1.2.0."
  type        = string
}

variable "cpu" {
  description = "Fargate CPU units per task (1024 = one vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory per task, MiB."
  type        = number
  default     = 2048
}

variable "min_tasks" {
  description = "Tasks always running (at least 2 for zero-downtime deploys across zones)."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Tasks autoscaling may reach."
  type        = number
  default     = 10
}

variable "vpc_id" {
  description = "The VPC to run in."
  type        = string
}

variable "lb_subnet_ids" {
  description = "Subnets of the load balancer (public ones for agents on the internet)."
  type        = list(string)
}

variable "task_subnet_ids" {
  description = "Private subnets of the tasks; they reach AWS APIs through NAT or VPC endpoints."
  type        = list(string)
}

variable "internal" {
  description = "An internal load balancer (agents only inside the VPC or over VPN)."
  type        = bool
  default     = false
}

variable "agent_cidrs" {
  description = "Addresses agents and operators connect from."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tls_mode" {
  description = "\"alb\": TLS ends at an ALB with an ACM certificate; \"passthrough\": an NLB passes TLS to sgt serve, which uses a certificate from SSM."
  type        = string
  default     = "alb"
  validation {
    condition     = contains(["alb", "passthrough"], var.tls_mode)
    error_message = "tls_mode must be \"alb\" or \"passthrough\"."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the agents' hostname (tls_mode = alb)."
  type        = string
  default     = null
}

variable "tls_cert_parameter" {
  description = "SSM SecureString holding the PEM certificate chain (tls_mode = passthrough)."
  type        = string
  default     = null
}

variable "tls_key_parameter" {
  description = "SSM SecureString holding the PEM private key (tls_mode = passthrough)."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic alarms notify; null for alarms without actions."
  type        = string
  default     = null
}

variable "latency_p99_alarm_seconds" {
  description = "Alarm when p99 response time stays above this (alb mode)."
  type        = number
  default     = 0.5
}

variable "table_arns" {
  description = "The data module's table ARNs."
  type        = list(string)
}

variable "table_prefix" {
  description = "The data module's table prefix."
  type        = string
}

variable "enroll_secrets_path" {
  description = "The data module's SSM path for enroll secrets."
  type        = string
}

variable "enroll_secrets_path_arn" {
  description = "Its ARN."
  type        = string
}

variable "carve_bucket" {
  description = "The data module's carve bucket."
  type        = string
}

variable "carve_bucket_arn" {
  description = "Its ARN."
  type        = string
}

variable "log_stream_name" {
  description = "The data module's Firehose stream."
  type        = string
}

variable "log_records_per_line" {
  description = "Send one log line per Firehose record (a stream into OpenSearch needs it); else lines are packed into records."
  type        = bool
  default     = false
}

variable "log_stream_arn" {
  description = "Its ARN."
  type        = string
}

variable "kms_key_arn" {
  description = "The data module's KMS key."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
