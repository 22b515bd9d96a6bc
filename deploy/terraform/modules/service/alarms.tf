# Alarms: server errors and latency at the balancer, DynamoDB throttling, Firehose delivery
# falling behind or failing, and fewer healthy tasks than the minimum.

locals {
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
  lb_dimension  = { LoadBalancer = aws_lb.this.arn_suffix }
  table_names   = [for arn in var.table_arns : element(split("/", arn), 1)]
}

resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count               = local.alb ? 1 : 0
  alarm_name          = "${var.name_prefix}-5xx"
  alarm_description   = "sgt answered 5xx (busy, timeouts, backend failures): agents retry, so this is load or a backend in trouble."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  dimensions          = local.lb_dimension
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 50
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lb_5xx" {
  count               = local.alb ? 1 : 0
  alarm_name          = "${var.name_prefix}-lb-5xx"
  alarm_description   = "The ALB itself answered 5xx: no healthy task, or tasks refusing connections."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  dimensions          = local.lb_dimension
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 10
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "latency" {
  count               = local.alb ? 1 : 0
  alarm_name          = "${var.name_prefix}-latency-p99"
  alarm_description   = "p99 response time above ${var.latency_p99_alarm_seconds} s: scale out, or look at DynamoDB and Firehose latency."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.lb_dimension
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.latency_p99_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_tasks" {
  alarm_name          = "${var.name_prefix}-healthy-tasks"
  alarm_description   = "Fewer healthy sgt tasks than the minimum."
  namespace           = local.alb ? "AWS/ApplicationELB" : "AWS/NetworkELB"
  metric_name         = "HealthyHostCount"
  dimensions          = merge(local.lb_dimension, { TargetGroup = aws_lb_target_group.serve.arn_suffix })
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.min_tasks
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  for_each            = toset(local.table_names)
  alarm_name          = "${each.value}-throttles"
  alarm_description   = "DynamoDB throttled reads or writes on ${each.value}: on-demand tables throttle past twice their previous peak; sgt answers agents with errors and they retry."
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "throttles"
    expression  = "reads + writes"
    label       = "Throttle events"
    return_data = true
  }

  metric_query {
    id = "reads"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "ReadThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 60
    }
  }

  metric_query {
    id = "writes"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "WriteThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 60
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "firehose_throttled" {
  alarm_name          = "${var.log_stream_name}-throttled"
  alarm_description   = "Firehose throttled PutRecordBatch: log requests fail and agents keep their lines; raise the stream's quota."
  namespace           = "AWS/Firehose"
  metric_name         = "ThrottledRecords"
  dimensions          = { DeliveryStreamName = var.log_stream_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "firehose_delivery" {
  alarm_name          = "${var.log_stream_name}-delivery-failing"
  alarm_description   = "Firehose is not delivering to S3 (permissions, key, bucket): records wait in the stream up to 24 h."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.Success"
  dimensions          = { DeliveryStreamName = var.log_stream_name }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "firehose_freshness" {
  alarm_name          = "${var.log_stream_name}-freshness"
  alarm_description   = "The oldest record in Firehose is over 15 minutes old: delivery is falling behind."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  dimensions          = { DeliveryStreamName = var.log_stream_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 900
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
