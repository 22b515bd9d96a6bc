variable "name_prefix" {
  description = "Prefix of every resource name, e.g. sgt-prod; one per environment."
  type        = string
  validation {
    # Bucket names add the account and region and must stay within 63 characters; load
    # balancer and target group names within 32.
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name_prefix))
    error_message = "name_prefix: 2 to 24 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the tables (turn off only to destroy a test environment)."
  type        = bool
  default     = true
}

variable "carve_retention_days" {
  description = "Days carve archives and blocks are kept in S3."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days Firehose's log objects are kept in S3 (moved to Glacier after 30)."
  type        = number
  default     = 365
}

variable "opensearch_domain_arn" {
  description = "An OpenSearch domain to index logs into as well (S3 keeps every record); null for S3 only."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
