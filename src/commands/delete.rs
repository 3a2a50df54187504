//! `berth delete KIND NAME... | KIND/NAME... | -f FILE|DIR|- [-n NS] [--grace-period N] [--now]`.
//!
//! Deletion is by name; the daemon's garbage collector removes what the objects own
//! (a Deployment's ReplicaSets and their pods). An object that is already gone is reported and
//! makes the exit code 1, the others are still deleted, as kubectl does.

use std::process::ExitCode;

use berth_api::object::KindInfo;
use http::Method;

use super::{
    apply::{check, parse_inputs, read_inputs},
    objects::{block_on, connect, print},
    resource::{Target, object_path, parse_targets},
};
use crate::{
    cli::{DeleteArgs, GlobalArgs},
    client::with_query,
};

/// One object to delete, in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub kind: &'static KindInfo,
    pub namespace: String,
    pub name: String,
}

/// `gracePeriodSeconds`: `--now` is 1, as kubectl has it.
pub fn grace_period(args: &DeleteArgs) -> Option<i64> {
    if args.now { Some(1) } else { args.grace_period }
}

fn deletions(args: &DeleteArgs) -> anyhow::Result<Vec<Deletion>> {
    if !args.files.is_empty() {
        if !args.args.is_empty() {
            anyhow::bail!("delete: give either -f or KIND NAME..., not both");
        }
        let inputs = read_inputs(&args.files, args.recursive, std::io::stdin().lock())?;
        let mut parsed = parse_inputs(&inputs);
        parsed.default_and_validate();
        check(&parsed)?;
        return Ok(parsed
            .documents
            .iter()
            .map(|document| {
                let object = &document.object;
                Deletion {
                    kind: object.info(),
                    namespace: object
                        .metadata()
                        .namespace
                        .clone()
                        .filter(|ns| args.namespace.namespace == "default" || ns != "default")
                        .unwrap_or_else(|| args.namespace.namespace.clone()),
                    name: object.name().to_owned(),
                }
            })
            .rev()
            .collect());
    }
    let targets = parse_targets("delete", &args.args)?;
    Ok(targets
        .into_iter()
        .map(|Target { kind, name }| Deletion {
            kind,
            namespace: args.namespace.namespace.clone(),
            name,
        })
        .collect())
}

pub fn run(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let deletions = deletions(&args)?;
    let grace = grace_period(&args)
        .map(|g| g.to_string())
        .unwrap_or_default();
    let client = connect(global)?;
    block_on(async move {
        let mut code = ExitCode::SUCCESS;
        for deletion in deletions {
            let path = with_query(
                &object_path(deletion.kind, &deletion.namespace, &deletion.name),
                &[("gracePeriodSeconds", grace.as_str())],
            );
            match client.send(Method::DELETE, &path, None).await {
                Ok(_) => print(&format!(
                    "{} {:?} deleted\n",
                    deletion.kind.resource_name(),
                    deletion.name
                ))?,
                Err(err) if err.is_code(404) => {
                    eprintln!("{err}");
                    code = ExitCode::from(1);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(code)
    })
}
