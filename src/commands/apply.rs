//! `berth apply -f FILE|DIR|- [--prune] [--dry-run[=client|server]]`.
//!
//! The manifests are read here (a directory's `*.yaml|*.yml|*.json`, sorted, recursively with
//! `-R`), parsed, defaulted and validated locally first, so that every problem of every file
//! is reported at once with its file, document and field path, before the daemon is asked.
//! Then one [`ApplyRequest`] carries every file (paths absolute: they become the objects'
//! source annotation, which `--prune` matches): the daemon applies all of it or nothing.
//! `--dry-run` (= `client`) needs no daemon; `--dry-run=server` has the daemon check
//! everything and store nothing.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use berth_api::{
    Document, Object,
    parse::{Parsed, Source, parse_str},
};
use berth_apiserver::apply::{ApplyAction, ApplyRequest, ApplyResponse, ManifestFile};
use http::Method;

use super::objects::{block_on, connect, print, print_bytes};
use crate::{
    cli::{ApplyArgs, DryRun, GlobalArgs, OutputFormat},
    client::{Body, with_query},
};

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A manifest file read from the command line.
#[derive(Debug, Clone)]
pub struct Input {
    /// As the user typed it (or the file found in a directory they named), for messages.
    pub shown: PathBuf,
    /// What the daemon is told: the absolute path, or `stdin`.
    pub file: ManifestFile,
    pub stdin: bool,
}

/// The manifest files of a directory: `*.yaml|*.yml|*.json`, sorted, subdirectories too when
/// `recursive`.
pub fn directory_files(dir: &Path, recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("{}: cannot read", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("{}: cannot read", dir.display()))?
                .path();
            if path.is_dir() {
                if recursive {
                    pending.push(path);
                }
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e))
            {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        anyhow::bail!(
            "{}: no .yaml, .yml or .json files in this directory{}",
            dir.display(),
            if recursive {
                ""
            } else {
                " (use -R for subdirectories)"
            }
        );
    }
    files.sort();
    Ok(files)
}

/// Reads every `-f`: files, directories and `-` (standard input, read once).
pub fn read_inputs(
    paths: &[PathBuf],
    recursive: bool,
    mut stdin: impl Read,
) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_read {
                continue;
            }
            stdin_read = true;
            let mut content = String::new();
            stdin
                .read_to_string(&mut content)
                .context("<stdin>: cannot read")?;
            inputs.push(Input {
                shown: PathBuf::from("-"),
                file: ManifestFile {
                    path: "stdin".to_owned(),
                    content,
                },
                stdin: true,
            });
            continue;
        }
        let metadata =
            std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let files = if metadata.is_dir() {
            directory_files(path, recursive)?
        } else {
            vec![path.clone()]
        };
        for file in files {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("{}: cannot read as UTF-8 text", file.display()))?;
            let absolute = std::path::absolute(&file)
                .with_context(|| format!("{}: cannot make the path absolute", file.display()))?;
            inputs.push(Input {
                shown: file,
                file: ManifestFile {
                    path: absolute.display().to_string(),
                    content,
                },
                stdin: false,
            });
        }
    }
    Ok(inputs)
}

/// Parses every input (nothing defaulted yet).
pub fn parse_inputs(inputs: &[Input]) -> Parsed {
    let mut parsed = Parsed::default();
    for input in inputs {
        let source = if input.stdin {
            Source::Stdin
        } else {
            Source::File(input.shown.clone())
        };
        parsed.extend(parse_str(source, &input.file.content));
    }
    parsed
}

/// Prints every problem and fails when there is one.
pub fn check(parsed: &Parsed) -> anyhow::Result<()> {
    if parsed.errors.is_empty() {
        return Ok(());
    }
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

/// With `-n NS` other than `default`: objects without a namespace go to NS (their files are
/// sent re-serialized); an object in another namespace is an error, as with kubectl.
fn set_namespace(inputs: &mut [Input], namespace: &str) -> anyhow::Result<()> {
    for input in inputs {
        let source = if input.stdin {
            Source::Stdin
        } else {
            Source::File(input.shown.clone())
        };
        let parsed = parse_str(source, &input.file.content);
        let mut documents = Vec::new();
        for mut document in parsed.documents {
            let info = document.object.info();
            if info.namespaced {
                match document.object.metadata().namespace.as_deref() {
                    Some(other) if other != namespace => anyhow::bail!(
                        "{}: the namespace from the provided object {:?} does not match the \
                         namespace {namespace:?}. You must pass '--namespace={other}' to \
                         perform this operation.",
                        input.shown.display(),
                        other,
                    ),
                    _ => {
                        document.object.metadata_mut().namespace = Some(namespace.to_owned());
                    }
                }
            }
            documents.push(document.object);
        }
        let mut content = String::new();
        for object in &documents {
            content.push_str("---\n");
            content.push_str(&serde_yaml::to_string(object).with_context(|| {
                format!("{}: cannot render {}", input.shown.display(), object.key())
            })?);
        }
        input.file.content = content;
    }
    Ok(())
}

pub fn run(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut inputs = read_inputs(&args.files, args.recursive, std::io::stdin().lock())?;
    let mut parsed = parse_inputs(&inputs);
    parsed.default_and_validate();
    check(&parsed)?;
    let dry_run = args.dry_run.unwrap_or(DryRun::None);
    if dry_run == DryRun::Client {
        let mut out = Vec::new();
        print_local(&mut out, &parsed.documents, args.output)?;
        print_bytes(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.namespace.namespace != "default" {
        set_namespace(&mut inputs, &args.namespace.namespace)?;
    }
    // Pruning covers what was named: a file, or everything under a directory.
    let prune_scopes = if args.prune {
        args.files
            .iter()
            .filter(|p| p.as_os_str() != "-")
            .map(|p| {
                std::path::absolute(p)
                    .map(|p| p.display().to_string())
                    .with_context(|| format!("{}: cannot make the path absolute", p.display()))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let request = ApplyRequest {
        files: inputs.into_iter().map(|i| i.file).collect(),
        source_prefix: None,
        prune_scopes,
    };
    let client = connect(global)?;
    let server_dry_run = dry_run == DryRun::Server;
    block_on(async move {
        let path = with_query(
            "/apis/berth.dev/v1/apply",
            &[
                ("dryRun", if server_dry_run { "All" } else { "" }),
                ("prune", if args.prune { "true" } else { "" }),
            ],
        );
        let response: ApplyResponse = client
            .json(
                Method::POST,
                &path,
                Some(Body::json("apply request", &request)?),
            )
            .await?;
        print(&render_response(&response))?;
        Ok(ExitCode::SUCCESS)
    })
}

fn action_name(action: ApplyAction) -> &'static str {
    match action {
        ApplyAction::Created => "created",
        ApplyAction::Configured => "configured",
        ApplyAction::Unchanged => "unchanged",
        ApplyAction::Pruned => "pruned",
    }
}

/// `deployment.apps/web configured` lines, as kubectl prints them.
pub fn render_response(response: &ApplyResponse) -> String {
    let mut out = String::new();
    for item in &response.items {
        let resource = match item.api_version.rsplit_once('/') {
            Some((group, _)) => format!("{}.{group}", item.kind.to_ascii_lowercase()),
            None => item.kind.to_ascii_lowercase(),
        };
        out.push_str(&format!(
            "{resource}/{} {}{}\n",
            item.name,
            action_name(item.action),
            if response.dry_run { " (dry run)" } else { "" }
        ));
    }
    out
}

fn print_local(
    out: &mut impl Write,
    documents: &[Document],
    format: OutputFormat,
) -> anyhow::Result<()> {
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
            let objects: Vec<&Object> = documents.iter().map(|d| &d.object).collect();
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

#[cfg(test)]
mod tests {
    use berth_apiserver::apply::AppliedObject;

    use super::*;

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NAME\n";

    #[test]
    fn directories_are_flat_unless_recursive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), NAMESPACE.replace("NAME", "b")).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "no").unwrap();
        std::fs::write(dir.path().join("nested/c.yml"), "").unwrap();
        let names = |files: Vec<PathBuf>| {
            files
                .iter()
                .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(directory_files(dir.path(), false).unwrap()),
            ["a.json", "b.yaml"]
        );
        assert_eq!(
            names(directory_files(dir.path(), true).unwrap()),
            ["a.json", "b.yaml", "nested/c.yml"]
        );
        let empty = tempfile::tempdir().unwrap();
        let err = directory_files(empty.path(), false).unwrap_err();
        assert!(err.to_string().contains("use -R"), "{err}");
    }

    #[test]
    fn inputs_carry_absolute_paths_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ns.yaml");
        std::fs::write(&file, NAMESPACE.replace("NAME", "prod")).unwrap();
        let inputs = read_inputs(
            &[file.clone(), PathBuf::from("-"), PathBuf::from("-")],
            false,
            NAMESPACE.replace("NAME", "dev").as_bytes(),
        )
        .unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].file.path, file.display().to_string());
        assert_eq!(inputs[1].file.path, "stdin");
        assert!(inputs[1].file.content.contains("dev"));
        let mut parsed = parse_inputs(&inputs);
        parsed.default_and_validate();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 2);
    }

    #[test]
    fn namespace_flag_fills_in_and_refuses_a_conflict() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}]\n";
        let mut inputs = vec![Input {
            shown: PathBuf::from("pod.yaml"),
            file: ManifestFile {
                path: "/x/pod.yaml".into(),
                content: format!("{pod}---\n{}", NAMESPACE.replace("NAME", "prod")),
            },
            stdin: false,
        }];
        set_namespace(&mut inputs, "prod").unwrap();
        let parsed = parse_inputs(&inputs);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(
            parsed.documents[0].object.metadata().namespace.as_deref(),
            Some("prod")
        );
        // Namespaces themselves are cluster-scoped.
        assert_eq!(parsed.documents[1].object.metadata().namespace, None);

        let mut other = vec![Input {
            shown: PathBuf::from("pod.yaml"),
            file: ManifestFile {
                path: "/x/pod.yaml".into(),
                content: pod.replace("{name: p}", "{name: p, namespace: dev}"),
            },
            stdin: false,
        }];
        let err = set_namespace(&mut other, "prod").unwrap_err();
        assert!(err.to_string().contains("--namespace=dev"), "{err}");
    }

    #[test]
    fn response_lines_are_kubectls() {
        let item = |api_version: &str, kind: &str, name: &str, action| AppliedObject {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: name.into(),
            action,
        };
        let response = ApplyResponse {
            items: vec![
                item("apps/v1", "Deployment", "web", ApplyAction::Created),
                item("v1", "Service", "web", ApplyAction::Configured),
                item("v1", "ConfigMap", "c", ApplyAction::Unchanged),
                item("apps/v1", "Deployment", "old", ApplyAction::Pruned),
            ],
            dry_run: false,
        };
        assert_eq!(
            render_response(&response),
            "deployment.apps/web created\nservice/web configured\nconfigmap/c unchanged\n\
             deployment.apps/old pruned\n"
        );
        let dry = ApplyResponse {
            dry_run: true,
            ..response
        };
        assert!(render_response(&dry).starts_with("deployment.apps/web created (dry run)\n"));
    }
}
