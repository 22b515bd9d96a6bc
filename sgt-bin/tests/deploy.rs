//! `sgt deploy` and `sgt destroy` with a stand-in `terraform` that records its arguments, and
//! provisioning against the AWS emulator (moto) that `scripts/test` starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SGT: &str = env!("CARGO_BIN_EXE_sgt");

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy")
}

/// A stand-in `terraform` in `dir`: appends `TF_DATA_DIR|ARGS` to `dir/calls` and answers
/// `output -json` with `dir/outputs.json`.
fn stand_in_terraform(dir: &Path) -> PathBuf {
    let path = dir.join("terraform");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$TF_DATA_DIR|$*\" >> {calls}\ncase \" $* \" in *\" output \"*) cat {outputs};; esac\nexit 0\n",
            calls = dir.join("calls").display(),
            outputs = dir.join("outputs.json").display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (data_dir, args) = l.split_once('|').unwrap();
            (data_dir.to_owned(), args.to_owned())
        })
        .collect()
}

fn sgt(args: &[&str], env: &[(&str, &str)], path: &str, stdin: &str) -> Output {
    let mut child = Command::new(SGT)
        .args(args)
        .env("PATH", path)
        .env_remove("SGT_TERRAFORM")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn without_terraform_deploy_says_what_to_install_and_does_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let deploy = deploy_dir();
    let output = sgt(
        &[
            "deploy",
            "--env",
            "dev",
            "--deploy-dir",
            deploy.to_str().unwrap(),
        ],
        &[],
        empty.path().to_str().unwrap(),
        "",
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("terraform was not found on the PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("install Terraform"), "{stderr}");
    assert!(!deploy.join("terraform/.terraform/dev").exists());

    // An unknown environment is named, with the ones that exist.
    let output = sgt(
        &[
            "deploy",
            "--env",
            "qa",
            "--deploy-dir",
            deploy.to_str().unwrap(),
        ],
        &[],
        empty.path().to_str().unwrap(),
        "",
    );
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no environment \"qa\""), "{stderr}");
    assert!(stderr.contains("dev"), "{stderr}");
}

#[test]
fn deploy_plan_runs_init_with_the_state_settings_then_plan() {
    let bin = tempfile::tempdir().unwrap();
    stand_in_terraform(bin.path());
    let deploy = deploy_dir();
    let output = sgt(
        &[
            "deploy",
            "--env",
            "dev",
            "--plan",
            "--deploy-dir",
            deploy.to_str().unwrap(),
        ],
        &[],
        &format!("{}:/usr/bin:/bin", bin.path().display()),
        "",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let module = std::path::absolute(deploy.join("terraform")).unwrap();
    let data_dir = module.join(".terraform/dev");
    let tfvars = std::path::absolute(deploy.join("environments/dev.tfvars")).unwrap();
    let chdir = format!("-chdir={}", module.display());
    assert_eq!(
        calls(bin.path()),
        vec![
            (
                data_dir.display().to_string(),
                format!(
                    "{chdir} init -input=false -backend-config=bucket=example-sgt-terraform-state -backend-config=key=sgt/dev/terraform.tfstate -backend-config=region=eu-west-1 -backend-config=encrypt=true -backend-config=use_lockfile=true"
                )
            ),
            (
                data_dir.display().to_string(),
                format!(
                    "{chdir} plan -input=false -var-file={} -out={}",
                    tfvars.display(),
                    data_dir.join("sgt.tfplan").display()
                )
            ),
        ]
    );
    assert!(text(&output.stdout).contains("planned dev and changed nothing"));
}

#[cfg(feature = "aws")]
#[test]
fn deploy_applies_the_plan_then_provisions_what_terraform_made() {
    let endpoint = std::env::var("SGT_TEST_AWS_ENDPOINT").expect(
        "SGT_TEST_AWS_ENDPOINT is not set: this test needs the emulator; run ./scripts/test",
    );
    let bin = tempfile::tempdir().unwrap();
    stand_in_terraform(bin.path());
    // What the Terraform outputs would name, unique to this run in the shared emulator.
    let run = format!("sgt-deploytest-{}", std::process::id());
    std::fs::write(
        bin.path().join("outputs.json"),
        serde_json::json!({
            "table_prefix": {"value": run},
            "secrets_prefix": {"value": format!("/{run}")},
            "log_stream": {"value": format!("{run}-logs")},
            "carve_bucket": {"value": format!("{run}-carves")},
            "region": {"value": "us-east-1"},
            "lb_dns_name": {"value": "sgt-dev-123.eu-west-1.elb.amazonaws.com"},
        })
        .to_string(),
    )
    .unwrap();
    // Terraform made the log stream; provisioning finds it (and creates the tables and
    // bucket the stand-in did not make, as it would after a partial apply).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = sgt_aws::aws_config_for(
            &sgt_aws::AwsSettings {
                endpoint_url: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
            },
            sgt_bin::backends::aws_https_client(),
        )
        .await;
        sgt_aws::provision::ensure_bucket(&config, &format!("{run}-logs-bucket"))
            .await
            .unwrap();
        sgt_aws::provision::ensure_delivery_stream(
            &config,
            &format!("{run}-logs"),
            &format!("{run}-logs-bucket"),
            "arn:aws:iam::123456789012:role/firehose",
        )
        .await
        .unwrap();
    });
    let data = tempfile::tempdir().unwrap();
    let deploy = deploy_dir();
    // `sgt deploy --env dev` with the stand-in first on the PATH, against the emulator.
    let deploy_dev = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--env",
            "dev",
            "--deploy-dir",
            deploy.to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sgt(
            &args,
            &[("AWS_ENDPOINT_URL", &endpoint)],
            &format!("{}:/usr/bin:/bin", bin.path().display()),
            "",
        )
    };
    let output = deploy_dev(&["--create-state-bucket"]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let commands: Vec<String> = calls(bin.path())
        .into_iter()
        .map(|(_, args)| args.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(commands, ["init", "plan", "apply", "output"]);
    let apply = &calls(bin.path())[2].1;
    assert!(
        apply.ends_with("/terraform/.terraform/dev/sgt.tfplan"),
        "{apply}"
    );
    assert!(
        stdout.contains("state bucket example-sgt-terraform-state"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created environment \"default\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("sgt-dev-123.eu-west-1.elb.amazonaws.com"),
        "{stdout}"
    );
    assert!(data.path().join("enroll_secret").is_file());
    assert!(data.path().join("admin_password").is_file());

    // A second deploy changes nothing that exists.
    std::fs::remove_file(bin.path().join("calls")).unwrap();
    let output = deploy_dev(&[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("environment \"default\" exists"),
        "{stdout}"
    );
}

#[test]
fn destroy_runs_only_after_the_environment_name_is_typed() {
    let bin = tempfile::tempdir().unwrap();
    stand_in_terraform(bin.path());
    let deploy = deploy_dir();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let args = [
        "destroy",
        "--env",
        "dev",
        "--deploy-dir",
        deploy.to_str().unwrap(),
    ];
    let output = sgt(&args, &[], &path, "prod\n");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("not confirmed"));
    assert!(calls(bin.path()).is_empty(), "terraform was not run");

    let output = sgt(&args, &[], &path, "dev\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tfvars = std::path::absolute(deploy.join("environments/dev.tfvars")).unwrap();
    let calls = calls(bin.path());
    assert_eq!(calls.len(), 2);
    assert!(calls[0]
        .1
        .contains(" init -input=false -backend-config=bucket="));
    assert!(
        calls[1].1.ends_with(&format!(
            " destroy -input=false -auto-approve -var-file={}",
            tfvars.display()
        )),
        "{}",
        calls[1].1
    );
}
