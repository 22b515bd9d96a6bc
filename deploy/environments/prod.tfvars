# sgt prod: `sgt deploy --env prod`. Terraform state: s3://<state_bucket>/sgt/prod/terraform.tfstate
environment  = "prod"
region       = "eu-west-1"
state_bucket = "example-sgt-terraform-state"
image        = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sgt:0.1.0"

vpc_id          = "vpc-0123456789abcdef0"
lb_subnet_ids   = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2", "subnet-0aaaaaaaaaaaaaaa3"]
task_subnet_ids = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2", "subnet-0bbbbbbbbbbbbbbb3"]

tls_mode        = "alb"
certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-1111-1111-1111-111111111111"

min_tasks       = 2
max_tasks       = 10
alarm_topic_arn = "arn:aws:sns:eu-west-1:123456789012:sgt-prod-alarms"
