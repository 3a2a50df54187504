//! `berth schema [KIND]`: prints the JSON Schema (draft 2020-12) of every kind, or of one.

use std::{io::Write, process::ExitCode};

use crate::cli::SchemaArgs;

pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let schema = match &args.kind {
        Some(kind) => berth_api::schema::for_kind(kind)?,
        None => berth_api::schema::all_kinds(),
    };
    std::io::stdout()
        .lock()
        .write_all(berth_api::schema::to_pretty_json(&schema).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
