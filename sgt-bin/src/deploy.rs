//! `sgt deploy --env NAME [--plan]` and `sgt destroy --env NAME`: Terraform for one
//! environment of `deploy/terraform`, with its variables from `deploy/environments/NAME.tfvars`
//! and its state in S3 (`s3://<state_bucket>/sgt/NAME/terraform.tfstate`, locked with a lock
//! file), then the idempotent provisioning of `sgt provision` on what Terraform made.
//!
//! Each environment has its own Terraform working data (`TF_DATA_DIR` =
//! `deploy/terraform/.terraform/NAME`), so deploying dev never touches prod's backend setup.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::settings::{Overrides, Settings};

/// What to install when Terraform is missing.
const INSTALL_HINT: &str = "install Terraform 1.10 or later (https://developer.hashicorp.com/terraform/install) and put it on the PATH, or give its path with --terraform (OpenTofu works too: --terraform tofu)";

/// One environment's settings, read from `deploy/environments/NAME.tfvars`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The environment's name (`prod`, `dev`, …).
    pub name: String,
    /// Its variables file.
    pub tfvars: PathBuf,
    /// The region it runs in (and its state bucket's region).
    pub region: String,
    /// The S3 bucket holding its Terraform state.
    pub state_bucket: String,
}

impl Environment {
    /// Reads `<deploy_dir>/environments/<name>.tfvars`.
    ///
    /// # Errors
    /// A bad name, a missing or unparsable file (listing the environments that exist), or a
    /// file without `environment = "<name>"`, `region` or `state_bucket`.
    pub fn load(deploy_dir: &Path, name: &str) -> anyhow::Result<Environment> {
        let valid = !name.is_empty()
            && name.len() <= 20
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            bail!("--env {name:?}: use lowercase letters, digits and '-', starting with a letter");
        }
        let dir = deploy_dir.join("environments");
        let tfvars = std::path::absolute(dir.join(format!("{name}.tfvars")))?;
        if !tfvars.is_file() {
            let known = environments_in(&dir);
            bail!(
                "no environment {name:?}: {} does not exist (environments: {})",
                tfvars.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        let text = std::fs::read_to_string(&tfvars)
            .with_context(|| format!("cannot read {}", tfvars.display()))?;
        let body: hcl::Body =
            hcl::parse(&text).with_context(|| format!("{} is not valid HCL", tfvars.display()))?;
        let value = |key: &str| -> anyhow::Result<String> {
            body.attributes()
                .find(|a| a.key() == key)
                .and_then(|a| match a.expr() {
                    hcl::Expression::String(s) => Some(s.clone()),
                    _ => None,
                })
                .with_context(|| format!("{} must set {key} = \"…\"", tfvars.display()))
        };
        let environment = value("environment")?;
        if environment != name {
            bail!(
                "{} sets environment = {environment:?}; it must be {name:?}",
                tfvars.display()
            );
        }
        Ok(Environment {
            name: name.to_owned(),
            region: value("region")?,
            state_bucket: value("state_bucket")?,
            tfvars,
        })
    }

    /// The `-backend-config` arguments of `terraform init`: the state's bucket, key, region,
    /// encryption and S3-native locking.
    pub fn backend_config(&self) -> Vec<String> {
        vec![
            format!("-backend-config=bucket={}", self.state_bucket),
            format!("-backend-config=key=sgt/{}/terraform.tfstate", self.name),
            format!("-backend-config=region={}", self.region),
            "-backend-config=encrypt=true".to_owned(),
            "-backend-config=use_lockfile=true".to_owned(),
        ]
    }
}

fn environments_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".tfvars"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The Terraform executable: `explicit` (a path or a name on the PATH), else `terraform` on
/// the PATH.
///
/// # Errors
/// When it cannot be found, saying what to install.
pub fn find_terraform(explicit: Option<&str>) -> anyhow::Result<PathBuf> {
    let wanted = explicit.unwrap_or("terraform");
    if wanted.contains('/') {
        let path = PathBuf::from(wanted);
        if is_executable(&path) {
            return Ok(path);
        }
        bail!("{wanted} is not an executable file: {INSTALL_HINT}");
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(wanted);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("{wanted} was not found on the PATH: {INSTALL_HINT}")
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Terraform for one environment, run in `deploy/terraform`.
#[derive(Debug)]
pub struct Terraform {
    executable: PathBuf,
    module_dir: PathBuf,
    data_dir: PathBuf,
    environment: Environment,
}

impl Terraform {
    /// Terraform `executable` on `<deploy_dir>/terraform` for `environment`.
    ///
    /// # Errors
    /// When `<deploy_dir>/terraform` does not exist.
    pub fn new(
        executable: PathBuf,
        deploy_dir: &Path,
        environment: Environment,
    ) -> anyhow::Result<Terraform> {
        let module_dir = std::path::absolute(deploy_dir.join("terraform"))?;
        if !module_dir.join("main.tf").is_file() {
            bail!("{} holds no main.tf", module_dir.display());
        }
        let data_dir = module_dir.join(".terraform").join(&environment.name);
        Ok(Terraform {
            executable,
            module_dir,
            data_dir,
            environment,
        })
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.executable);
        command
            .arg(format!("-chdir={}", self.module_dir.display()))
            .args(args)
            .env("TF_DATA_DIR", &self.data_dir)
            .env("TF_IN_AUTOMATION", "1")
            .stdin(Stdio::null());
        command
    }

    /// Runs `terraform ARGS` with its output on ours.
    fn run(&self, args: &[String]) -> anyhow::Result<()> {
        let status = self
            .command(args)
            .status()
            .with_context(|| format!("cannot run {}", self.executable.display()))?;
        if !status.success() {
            bail!(
                "terraform {} failed ({status})",
                args.first().map(String::as_str).unwrap_or("")
            );
        }
        Ok(())
    }

    fn var_file(&self) -> String {
        format!("-var-file={}", self.environment.tfvars.display())
    }

    fn plan_file(&self) -> PathBuf {
        self.data_dir.join("sgt.tfplan")
    }

    /// `terraform init` with the environment's state settings.
    ///
    /// # Errors
    /// When terraform fails.
    pub fn init(&self) -> anyhow::Result<()> {
        let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
        args.extend(self.environment.backend_config());
        self.run(&args)
    }

    /// `terraform plan`, saving the plan for [`Terraform::apply`].
    ///
    /// # Errors
    /// When terraform fails.
    pub fn plan(&self) -> anyhow::Result<()> {
        self.run(&[
            "plan".to_owned(),
            "-input=false".to_owned(),
            self.var_file(),
            format!("-out={}", self.plan_file().display()),
        ])
    }

    /// `terraform apply` of the saved plan.
    ///
    /// # Errors
    /// When terraform fails.
    pub fn apply(&self) -> anyhow::Result<()> {
        self.run(&[
            "apply".to_owned(),
            "-input=false".to_owned(),
            self.plan_file().display().to_string(),
        ])
    }

    /// `terraform destroy`, without Terraform's own prompt (the caller confirmed).
    ///
    /// # Errors
    /// When terraform fails.
    pub fn destroy(&self) -> anyhow::Result<()> {
        self.run(&[
            "destroy".to_owned(),
            "-input=false".to_owned(),
            "-auto-approve".to_owned(),
            self.var_file(),
        ])
    }

    /// `terraform output -json`: the names the environment's server settings need.
    ///
    /// # Errors
    /// When terraform fails or an output is missing.
    pub fn outputs(&self) -> anyhow::Result<DeployedEnvironment> {
        let output = self
            .command(&["output".to_owned(), "-json".to_owned()])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", self.executable.display()))?;
        if !output.status.success() {
            bail!("terraform output failed ({})", output.status);
        }
        let outputs: serde_json::Value = serde_json::from_slice(&output.stdout)
            .context("terraform output -json did not print JSON")?;
        let value = |key: &str| -> anyhow::Result<String> {
            outputs[key]["value"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("terraform output {key} is missing"))
        };
        Ok(DeployedEnvironment {
            table_prefix: value("table_prefix")?,
            secrets_prefix: value("secrets_prefix")?,
            log_stream: value("log_stream")?,
            carve_bucket: value("carve_bucket")?,
            region: value("region")?,
            lb_dns_name: outputs["lb_dns_name"]["value"].as_str().map(str::to_owned),
        })
    }
}

/// What Terraform made for an environment, from its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedEnvironment {
    /// `storage = dynamodb://<table_prefix>`.
    pub table_prefix: String,
    /// `secrets = ssm://<secrets_prefix>`.
    pub secrets_prefix: String,
    /// `log_sink = firehose://<log_stream>`.
    pub log_stream: String,
    /// `blobs = s3://<carve_bucket>`.
    pub carve_bucket: String,
    /// The region.
    pub region: String,
    /// The balancer's DNS name.
    pub lb_dns_name: Option<String>,
}

impl DeployedEnvironment {
    /// The server settings of this environment, with first-start files (the default enroll
    /// secret, the admin password) under `data_dir`.
    ///
    /// # Errors
    /// When the outputs do not make valid backend settings.
    pub fn settings(&self, data_dir: &Path) -> anyhow::Result<Settings> {
        let mut settings = Settings::resolve(&Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            storage: Some(format!("dynamodb://{}", self.table_prefix)),
            secrets: Some(format!("ssm://{}", self.secrets_prefix)),
            log_sink: Some(format!("firehose://{}", self.log_stream)),
            blobs: Some(format!("s3://{}", self.carve_bucket)),
            ..Default::default()
        })?;
        settings.aws.region = Some(self.region.clone());
        Ok(settings)
    }
}

/// What `sgt deploy` and `sgt destroy` were asked.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The environment's name.
    pub env: String,
    /// The folder holding `terraform/` and `environments/`.
    pub deploy_dir: PathBuf,
    /// Terraform's executable, when not `terraform` on the PATH.
    pub terraform: Option<String>,
}

impl DeployRequest {
    fn terraform(&self) -> anyhow::Result<Terraform> {
        // Read the environment first: a typo in its name is reported before a missing tool.
        let environment = Environment::load(&self.deploy_dir, &self.env)?;
        let executable = find_terraform(self.terraform.as_deref())?;
        Terraform::new(executable, &self.deploy_dir, environment)
    }
}

/// `sgt deploy`: init, plan, and unless `plan_only`, apply and provision the environment
/// (tables, stream and bucket are Terraform's; provisioning adds the `default` environment,
/// its enroll secret and user `admin`, writing the secret and password under `data_dir`).
/// Returns what it did, one line each.
///
/// # Errors
/// A missing environment or Terraform, a failing Terraform step, or provisioning failures.
pub async fn deploy(
    request: &DeployRequest,
    plan_only: bool,
    create_state_bucket: bool,
    data_dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let terraform = request.terraform()?;
    let mut report = Vec::new();
    if create_state_bucket {
        report.push(ensure_state_bucket(&terraform.environment).await?);
    }
    terraform.init()?;
    terraform.plan()?;
    if plan_only {
        report.push(format!(
            "planned {} and changed nothing; `sgt deploy --env {}` plans again and applies that plan",
            request.env, request.env
        ));
        return Ok(report);
    }
    terraform.apply()?;
    let deployed = terraform.outputs()?;
    let settings = deployed.settings(data_dir)?;
    report.extend(crate::provision::provision(&settings, &Default::default()).await?);
    report.push(format!(
        "environment {} is deployed in {}",
        request.env, deployed.region
    ));
    if let Some(dns) = &deployed.lb_dns_name {
        report.push(format!(
            "point the agents' hostname at {dns}, then write their flags with `sgt osquery-flags` (deploy/README.md, step 4)"
        ));
    }
    Ok(report)
}

/// Creates the environment's Terraform state bucket, versioned and private, unless it exists.
#[cfg(feature = "aws")]
async fn ensure_state_bucket(environment: &Environment) -> anyhow::Result<String> {
    let config = sgt_aws::aws_config_for(
        &sgt_aws::AwsSettings {
            endpoint_url: None,
            region: Some(environment.region.clone()),
        },
        crate::backends::aws_https_client(),
    )
    .await;
    let bucket = &environment.state_bucket;
    Ok(
        match sgt_aws::provision::ensure_state_bucket(&config, bucket).await? {
            true => format!("created Terraform state bucket {bucket} (versioned, private)"),
            false => format!("Terraform state bucket {bucket} exists (versioned, private)"),
        },
    )
}

#[cfg(not(feature = "aws"))]
async fn ensure_state_bucket(_environment: &Environment) -> anyhow::Result<String> {
    bail!("--create-state-bucket needs the AWS SDK: build sgt with the `aws` feature")
}

/// `sgt destroy`: after `confirmed` says yes, init and destroy the environment.
///
/// # Errors
/// A missing environment or Terraform, no confirmation, or a failing Terraform step.
pub fn destroy(
    request: &DeployRequest,
    confirmed: impl FnOnce(&Environment) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let terraform = request.terraform()?;
    if !confirmed(&terraform.environment)? {
        bail!("not confirmed; nothing was destroyed");
    }
    terraform.init()?;
    terraform.destroy()
}
