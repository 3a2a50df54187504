//! `berth apply -f FILE|DIR|-`: reads manifests, defaults and validates them. With `--dry-run`
//! it prints what would be applied, without a daemon; every problem in every file is reported.

use std::{io::Write, process::ExitCode};

use anyhow::Context as _;
use berth_api::{Document, load};

use crate::cli::{ApplyArgs, GlobalArgs, OutputFormat};

pub fn run(_global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    if !args.dry_run {
        anyhow::bail!(
            "applying to a running berth needs the daemon, which arrives with `berth daemon`; \
             for now, check manifests with `berth apply --dry-run -f ...`"
        );
    }
    let mut parsed = load::load(&args.files, std::io::stdin().lock())?;
    parsed.default_and_validate();
    if !parsed.errors.is_empty() {
        let mut stderr = std::io::stderr().lock();
        for error in &parsed.errors {
            writeln!(stderr, "error: {error}")?;
        }
        let sources: std::collections::BTreeSet<_> = parsed
            .errors
            .iter()
            .map(|e| (e.location().source.clone(), e.location().document))
            .collect();
        anyhow::bail!(
            "{} problem{} in {} document{}; nothing was applied",
            parsed.errors.len(),
            if parsed.errors.len() == 1 { "" } else { "s" },
            sources.len(),
            if sources.len() == 1 { "" } else { "s" },
        );
    }
    let mut stdout = std::io::stdout().lock();
    match print(&mut stdout, &parsed.documents, args.output) {
        // A reader that stopped early (`| head`) is not an error.
        Err(err) if is_broken_pipe(&err) => Ok(ExitCode::SUCCESS),
        result => result.map(|()| ExitCode::SUCCESS),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn print(out: &mut impl Write, documents: &[Document], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Name => {
            for document in documents {
                let info = document.object.info();
                writeln!(
                    out,
                    "{}/{} created (dry run)",
                    info.resource_name(),
                    document.object.name()
                )?;
            }
        }
        OutputFormat::Yaml => {
            for (i, document) in documents.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                let text = serde_yaml::to_string(&document.object).context("cannot render YAML")?;
                out.write_all(text.as_bytes())?;
            }
        }
        OutputFormat::Json => {
            let objects: Vec<_> = documents.iter().map(|d| &d.object).collect();
            let value = match objects.as_slice() {
                [one] => serde_json::to_value(one)?,
                many => serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": many }),
            };
            serde_json::to_writer_pretty(&mut *out, &value)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
