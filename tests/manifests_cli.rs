//! `berth apply --dry-run` and `berth schema` driven through the real binary: what a user types.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("BERTH_ROOT", "/nonexistent/berth-root-unused")
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dry_run_of_the_examples_lists_every_object_and_succeeds() {
    let out = berth(&["apply", "--dry-run", "-f", "examples/"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        stdout.contains("deployment.apps/web created (dry run)"),
        "{stdout}"
    );
    assert!(stdout.contains("service/web created (dry run)"), "{stdout}");
    // One line per object in the examples, every one marked as a dry run.
    let objects = stdout.lines().filter(|l| l.ends_with("(dry run)")).count();
    assert!(
        objects >= 8,
        "expected every example object, got {objects}:\n{stdout}"
    );
}

#[test]
fn dry_run_prints_defaulted_objects_as_yaml() {
    let out = berth(&[
        "apply",
        "--dry-run",
        "-f",
        "examples/web.yaml",
        "-o",
        "yaml",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Defaults that were not in the file appear, as Kubernetes would set them.
    assert!(stdout.contains("progressDeadlineSeconds: 600"), "{stdout}");
    assert!(stdout.contains("restartPolicy: Always"), "{stdout}");
    assert!(stdout.contains("revisionHistoryLimit: 10"), "{stdout}");
    assert!(stdout.contains("namespace: default"), "{stdout}");
}

#[test]
fn dry_run_reports_every_error_with_file_document_and_field_path() {
    let out = berth(&["apply", "--dry-run", "-f", "api/tests/fixtures/invalid"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // Errors from many files, not just the first.
    for file in [
        "unknown-field-typo.yaml",
        "bad-quantity.yaml",
        "selector-mismatch.yaml",
    ] {
        assert!(stderr.contains(file), "no error for {file}:\n{stderr}");
    }
    assert!(stderr.contains("document 1 (line"), "{stderr}");
    assert!(
        stderr.contains("did you mean `readinessProbe`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.template.spec.containers[0]"),
        "{stderr}"
    );
}

#[test]
fn dry_run_reads_standard_input() {
    let manifest = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web.yaml"))
        .expect("read example");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["apply", "--dry-run", "-f", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&manifest)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait berth");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\"kind\": \"Deployment\""), "{stdout}");
}

#[test]
fn apply_without_dry_run_explains_that_it_needs_the_daemon() {
    let out = berth(&["apply", "-f", "examples/web.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("daemon"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn schema_covers_every_kind_and_one_kind_on_request() {
    let all = berth(&["schema"]);
    assert!(all.status.success(), "stderr: {}", text(&all.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&all.stdout).expect("schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let all_text = text(&all.stdout);
    for kind in [
        "Deployment",
        "Pod",
        "Service",
        "ConfigMap",
        "Secret",
        "Namespace",
    ] {
        assert!(
            all_text.contains(&format!("\"{kind}\"")),
            "schema lacks {kind}"
        );
    }

    let one = berth(&["schema", "deployment"]);
    assert!(one.status.success(), "stderr: {}", text(&one.stderr));
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).expect("schema is JSON");
    assert!(one.to_string().contains("maxSurge"));

    let unknown = berth(&["schema", "Job"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("Deployment"),
        "{}",
        text(&unknown.stderr)
    );
}
