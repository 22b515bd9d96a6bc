//! `sgt env …`: environments and their osquery config.

use std::path::PathBuf;

use clap::Subcommand;

use super::{environment_arg, output, read_document, Connection};
use crate::admin_types::NewEnvironment;
use sgt_core::types::EnvironmentName;

/// `sgt env …`
#[derive(Subcommand, Debug)]
pub enum EnvAction {
    /// List environments.
    List,
    /// Create an environment (with the default config unless --config is given).
    Create {
        /// Name.
        #[arg(value_parser = environment_arg)]
        name: EnvironmentName,
        /// A JSON or YAML osquery config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show an environment.
    Show {
        /// Name.
        name: String,
    },
    /// Delete an environment and revoke its secrets.
    Delete {
        /// Name.
        name: String,
    },
    /// Change how the server treats the environment's nodes.
    Set {
        /// Name.
        name: String,
        /// Remove nodes not seen for this many days (`never`: keep them).
        #[arg(long, value_parser = expiry_arg)]
        node_expiry_days: Option<ExpiryDays>,
        /// Whether hosts enrolling for the first time wait for `sgt node approve` (on, off).
        #[arg(long, value_parser = on_off_arg)]
        enroll_approval: Option<bool>,
    },
    /// Print the osquery config document.
    GetConfig {
        /// Name.
        name: String,
    },
    /// Replace the osquery config document with a JSON or YAML file.
    SetConfig {
        /// Name.
        name: String,
        /// The file.
        file: PathBuf,
    },
}

const COLUMNS: [&str; 4] = ["name", "created_at", "config_updated_at", "settings"];

/// `--node-expiry-days`: a number of days, or `never`.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryDays(Option<u32>);

fn expiry_arg(value: &str) -> Result<ExpiryDays, String> {
    if value == "never" {
        return Ok(ExpiryDays(None));
    }
    value
        .parse()
        .map(|days| ExpiryDays(Some(days)))
        .map_err(|_| format!("{value:?} is neither a number of days nor `never`"))
}

fn on_off_arg(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
    }
}

pub(super) async fn run(conn: &Connection, action: EnvAction) -> anyhow::Result<()> {
    let api = conn.client()?;
    match action {
        EnvAction::List => conn.show(&api.list_environments().await?, &COLUMNS),
        EnvAction::Set {
            name,
            node_expiry_days,
            enroll_approval,
        } => {
            let mut settings = api.environment(&name).await?.settings;
            if let Some(ExpiryDays(days)) = node_expiry_days {
                settings.node_expiry_days = days;
            }
            if let Some(approval) = enroll_approval {
                settings.enroll_approval = approval;
            }
            conn.show(&api.put_environment_settings(&name, &settings).await?, &[]);
        }
        EnvAction::Create { name, config } => {
            let config = config.as_deref().map(read_document).transpose()?;
            let created = api
                .create_environment(&NewEnvironment {
                    name: name.to_string(),
                    config,
                })
                .await?;
            conn.show(&created, &COLUMNS);
        }
        EnvAction::Show { name } => conn.show(&api.environment(&name).await?, &COLUMNS),
        EnvAction::Delete { name } => {
            api.delete_environment(&name).await?;
            eprintln!("environment {name} deleted and its secrets revoked");
        }
        EnvAction::GetConfig { name } => output::json(&api.config(&name).await?.config),
        EnvAction::SetConfig { name, file } => {
            let config = read_document(&file)?;
            api.put_config(&name, &config, None).await?;
            eprintln!("config of {name} replaced; agents get it at their next config poll");
        }
    }
    Ok(())
}
