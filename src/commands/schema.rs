//! `berth schema` (work in progress: filled in by its issue).

use std::process::ExitCode;

use crate::cli::SchemaArgs;

pub fn run(_args: SchemaArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`berth schema` is not available yet")
}
