# sgt dev: `sgt deploy --env dev`. Terraform state: s3://<state_bucket>/sgt/dev/terraform.tfstate
environment  = "dev"
region       = "eu-west-1"
state_bucket = "example-sgt-terraform-state"
image        = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sgt:0.1.0"

vpc_id          = "vpc-0123456789abcdef0"
lb_subnet_ids   = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
task_subnet_ids = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]

tls_mode        = "alb"
certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"

min_tasks           = 1
max_tasks           = 2
task_cpu            = 512
task_memory         = 1024
deletion_protection = false
