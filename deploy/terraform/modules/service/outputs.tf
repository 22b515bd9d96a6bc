output "lb_dns_name" {
  description = "The balancer's DNS name: point the agents' hostname (a CNAME or alias) at it."
  value       = aws_lb.this.dns_name
}

output "cluster" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service" {
  description = "The ECS service."
  value       = aws_ecs_service.serve.name
}

output "task_role_arn" {
  description = "The tasks' IAM role."
  value       = aws_iam_role.task.arn
}
