//! `berth apply` (work in progress: filled in by its issue).

use std::process::ExitCode;

use crate::cli::{GlobalArgs, ApplyArgs};

pub fn run(_global: &GlobalArgs, _args: ApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`berth apply` is not available yet")
}
