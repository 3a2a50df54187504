//! `berth image` (work in progress: filled in by its issue).

use std::process::ExitCode;

use crate::cli::{GlobalArgs, ImageCommand};

pub fn run(_global: &GlobalArgs, _args: ImageCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`berth image` is not available yet")
}
