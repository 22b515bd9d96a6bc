# sgt corp, in another region of the same account: `sgt deploy --env corp`.
environment  = "corp"
region       = "us-east-2"
state_bucket = "example-sgt-terraform-state"
image        = "123456789012.dkr.ecr.us-east-2.amazonaws.com/sgt:0.1.0"

vpc_id          = "vpc-0fedcba9876543210"
lb_subnet_ids   = ["subnet-0ccccccccccccccc1", "subnet-0ccccccccccccccc2"]
task_subnet_ids = ["subnet-0ddddddddddddddd1", "subnet-0ddddddddddddddd2"]
internal        = true
agent_cidrs     = ["10.0.0.0/8"]

# TLS passes through to sgt serve, with a certificate from the corporate CA kept in SSM.
tls_mode           = "passthrough"
tls_cert_parameter = "/sgt-corp/tls/cert-pem"
tls_key_parameter  = "/sgt-corp/tls/key-pem"
