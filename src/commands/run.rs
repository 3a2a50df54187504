//! `berth run` (work in progress: filled in by its issue).

use std::process::ExitCode;

use crate::cli::{GlobalArgs, RunArgs};

pub fn run(_global: &GlobalArgs, _args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`berth run` is not available yet")
}
