# Stateless `sgt serve` tasks on ECS Fargate behind a load balancer, health-checked on
# /healthz, scaled on CPU. TLS ends at an ALB (tls_mode = "alb") or passes through an NLB to
# sgt serve (tls_mode = "passthrough").

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
  account_id  = data.aws_caller_identity.current.account_id
  region      = data.aws_region.current.name
  partition   = data.aws_partition.current.partition
  alb         = var.tls_mode == "alb"
  port        = 8443
  secrets_url = "ssm://${trimsuffix(var.enroll_secrets_path, "/enroll-secrets")}"
  environment = concat(
    [
      { name = "SGT_LISTEN", value = "0.0.0.0:${local.port}" },
      { name = "SGT_DATA_DIR", value = "/data" },
      { name = "SGT_STORAGE", value = "dynamodb://${var.table_prefix}" },
      { name = "SGT_SECRETS", value = local.secrets_url },
      { name = "SGT_LOG_SINK", value = "firehose://${var.log_stream_name}${var.log_records_per_line ? "?records=line" : ""}" },
      { name = "SGT_BLOBS", value = "s3://${var.carve_bucket}" },
      { name = "AWS_REGION", value = local.region },
      # /metrics is answered only inside the VPC: the listener faces agent_cidrs (the
      # internet by default), and behind the ALB sgt sees the client's own address.
      { name = "SGT_METRICS_ALLOW", value = data.aws_vpc.this.cidr_block },
    ],
    local.alb ? [{ name = "SGT_INSECURE_HTTP", value = "true" }] : [],
  )
  secrets = local.alb ? [] : [
    { name = "SGT_TLS_CERT_PEM", valueFrom = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(coalesce(var.tls_cert_parameter, "unset"), "/")}" },
    { name = "SGT_TLS_KEY_PEM", valueFrom = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(coalesce(var.tls_key_parameter, "unset"), "/")}" },
  ]
}

resource "aws_ecs_cluster" "this" {
  name = var.name_prefix
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "service" {
  name              = "/sgt/${var.name_prefix}/serve"
  retention_in_days = 365
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "serve" {
  family                   = "${var.name_prefix}-serve"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # sgt serve writes its first-start files (the default enroll secret, the admin password)
  # under its data directory; the root filesystem stays read-only.
  volume {
    name = "data"
  }

  container_definitions = jsonencode([{
    name                   = "sgt"
    image                  = var.image
    essential              = true
    command                = ["serve"]
    readonlyRootFilesystem = true
    user                   = "65532:65532"
    portMappings           = [{ containerPort = local.port, protocol = "tcp" }]
    environment            = local.environment
    secrets                = local.secrets
    mountPoints            = [{ sourceVolume = "data", containerPath = "/data", readOnly = false }]
    # SIGTERM drains requests in flight (up to 20 s) before the task stops.
    stopTimeout = 30
    ulimits     = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "serve"
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "serve" {
  name                               = "serve"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.serve.arn
  desired_count                      = var.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 30
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.serve.arn
    container_name   = "sgt"
    container_port   = local.port
  }

  lifecycle {
    # Autoscaling owns the count once running.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.agents]
  tags       = var.tags
}

resource "aws_appautoscaling_target" "serve" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.serve.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name_prefix}-cpu"
  service_namespace  = aws_appautoscaling_target.serve.service_namespace
  resource_id        = aws_appautoscaling_target.serve.resource_id
  scalable_dimension = aws_appautoscaling_target.serve.scalable_dimension
  policy_type        = "TargetTrackingScaling"
  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Security groups: agents reach the balancer on 443; tasks take 8443 from the balancer (ALB)
# or, since an NLB keeps client addresses, from the agents' ranges and the VPC's health checks.
data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_security_group" "lb" {
  count       = local.alb ? 1 : 0
  name        = "${var.name_prefix}-lb"
  description = "sgt ${var.name_prefix}: agents and operators to the ALB"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "lb_https" {
  for_each          = local.alb ? toset(var.agent_cidrs) : toset([])
  security_group_id = aws_security_group.lb[0].id
  description       = "HTTPS from agents and operators"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "lb_to_tasks" {
  count                        = local.alb ? 1 : 0
  security_group_id            = aws_security_group.lb[0].id
  description                  = "To the sgt tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-tasks"
  description = "sgt ${var.name_prefix}: the sgt serve tasks"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  count                        = local.alb ? 1 : 0
  security_group_id            = aws_security_group.tasks.id
  description                  = "From the ALB"
  referenced_security_group_id = aws_security_group.lb[0].id
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_agents" {
  for_each          = local.alb ? toset([]) : toset(concat(var.agent_cidrs, [data.aws_vpc.this.cidr_block]))
  security_group_id = aws_security_group.tasks.id
  description       = "TLS through the NLB (client addresses kept) and its health checks"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_aws" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (DynamoDB, SSM, Firehose, S3), through NAT or VPC endpoints"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_lb" "this" {
  name                             = var.name_prefix
  load_balancer_type               = local.alb ? "application" : "network"
  internal                         = var.internal
  subnets                          = var.lb_subnet_ids
  security_groups                  = local.alb ? [aws_security_group.lb[0].id] : null
  drop_invalid_header_fields       = local.alb ? true : null
  enable_deletion_protection       = var.deletion_protection
  enable_cross_zone_load_balancing = true
  # osquery's requests are small and its connections long-lived: keep idle ones 65 s, as
  # sgt serve does.
  idle_timeout = local.alb ? 65 : null
  tags         = var.tags
  #checkov:skip=CKV_AWS_91:ALB access logs need an SSE-S3 bucket and the logs bucket is SSE-KMS; per-request records are in sgt's own metrics and logs.
  #checkov:skip=CKV2_AWS_28:osquery agents authenticate with enroll secrets and node keys (and optionally client certificates); put a WAF in front if your policy asks for one.
}

resource "aws_lb_target_group" "serve" {
  name                 = "${var.name_prefix}-serve"
  port                 = local.port
  protocol             = local.alb ? "HTTP" : "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  preserve_client_ip   = local.alb ? null : "true"

  health_check {
    enabled             = true
    path                = "/healthz"
    protocol            = local.alb ? "HTTP" : "HTTPS"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "agents" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = local.alb ? "HTTPS" : "TCP"
  ssl_policy        = local.alb ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  certificate_arn   = local.alb ? var.certificate_arn : null

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.serve.arn
  }

  tags = var.tags
}
