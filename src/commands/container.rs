//! `berth container` (work in progress: filled in by its issue).

use std::process::ExitCode;

use crate::cli::{GlobalArgs, ContainerCommand};

pub fn run(_global: &GlobalArgs, _args: ContainerCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`berth container` is not available yet")
}
