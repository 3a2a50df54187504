//! Every example and valid fixture parses, defaults and validates; objects survive a round trip
//! through YAML and JSON; and each one is also valid Kubernetes (kubernetes-validate).

mod common;

use std::{path::Path, process::Command};

use berth_api::{Document, Object, parse::Source};

fn load(path: &Path) -> Vec<Document> {
    let text = std::fs::read_to_string(path).unwrap();
    let source = Source::Named(common::display_path(path));
    match berth_api::parse::parse_and_validate(source, &text) {
        Ok(documents) => documents,
        Err(errors) => panic!("{} should be accepted:\n{errors}", path.display()),
    }
}

#[test]
fn every_example_and_valid_fixture_is_accepted() {
    let mut total = 0;
    for path in common::accepted_files() {
        let documents = load(&path);
        assert!(!documents.is_empty(), "{} holds no object", path.display());
        total += documents.len();
    }
    assert!(total >= 20, "only {total} objects in the accepted corpus");
}

#[test]
fn examples_carry_a_header_and_the_schema_modeline() {
    for path in common::manifest_files(&common::repo_root().join("examples")) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/berth.schema.json\n#\n# "),
            "{} must start with the schema modeline and a comment saying what it shows",
            path.display()
        );
    }
}

fn assert_round_trip(object: &Object, path: &Path) {
    let yaml = serde_yaml::to_string(object).unwrap();
    let reparsed = berth_api::parse_str(Source::Named("round-trip".into()), &yaml);
    assert!(
        reparsed.errors.is_empty(),
        "{}: re-parsing our own YAML failed: {:?}\n{yaml}",
        path.display(),
        reparsed.errors
    );
    assert_eq!(
        &reparsed.documents[0].object,
        object,
        "{}: YAML round trip changed the object",
        path.display()
    );
    let json = serde_json::to_string(object).unwrap();
    let from_json: Object = serde_json::from_str(&json).unwrap();
    assert_eq!(
        &from_json,
        object,
        "{}: JSON round trip changed the object",
        path.display()
    );
}

#[test]
fn parse_serialize_parse_gives_the_same_object() {
    for path in common::accepted_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = berth_api::parse_str(Source::Named("x".into()), &text);
        for document in &parsed.documents {
            assert_round_trip(&document.object, &path);
        }
        for document in load(&path) {
            assert_round_trip(&document.object, &path);
        }
    }
}

#[test]
fn the_deployment_of_web_yaml_has_kubernetes_defaults() {
    let documents = load(&common::repo_root().join("examples/web.yaml"));
    let Object::Deployment(deployment) = &documents[0].object else {
        panic!("web.yaml starts with a Deployment")
    };
    let rolling = deployment
        .spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(
        rolling
            .resolve_fenceposts(deployment.spec.replicas.unwrap())
            .unwrap(),
        (1, 0)
    );
    let container = &deployment.spec.template.spec.containers[0];
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .memory_limit()
            .unwrap()
            .to_bytes(),
        64 << 20
    );
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .cpu_request()
            .unwrap()
            .to_milli(),
        50
    );
}

/// The kubernetes-validate binary: `BERTH_KUBERNETES_VALIDATE`, else from PATH.
fn kubernetes_validate() -> Option<String> {
    if let Some(path) = std::env::var("BERTH_KUBERNETES_VALIDATE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Some(path);
    }
    let found = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| "kubernetes-validate".to_owned())
}

/// The Kubernetes version to check against (bundled by kubernetes-validate 1.37.0).
const KUBERNETES_VERSION: &str = "1.37.0";

#[test]
fn accepted_manifests_are_valid_kubernetes() {
    let Some(tool) = kubernetes_validate() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate is missing on CI: scripts/lib.sh install_kubernetes_validate installs it and exports BERTH_KUBERNETES_VALIDATE"
        );
        eprintln!(
            "SKIPPED: kubernetes-validate not found (run `. scripts/lib.sh; install_kubernetes_validate` or set BERTH_KUBERNETES_VALIDATE)"
        );
        return;
    };
    // Check the files as written, and every object as berth serializes it before and after
    // defaulting (one file per object, so that `kind: List` items are checked too).
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for path in common::accepted_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let raw = berth_api::parse_str(Source::Named("x".into()), &text);
        let has_list = raw.documents.iter().any(|d| d.location.item.is_some());
        if !has_list {
            files.push(path.clone());
        }
        for (stage, documents) in [("parsed", raw.documents), ("defaulted", load(&path))] {
            for (i, document) in documents.iter().enumerate() {
                let name = format!(
                    "{}-{stage}-{i}.json",
                    path.file_stem().unwrap().to_string_lossy()
                );
                let file = dir.path().join(name);
                // JSON, which is YAML too: kubernetes-validate reads YAML 1.1, where an unquoted
                // RFC 3339 string is a timestamp rather than the string Kubernetes expects.
                let json = serde_json::to_string_pretty(&document.object).unwrap();
                std::fs::write(&file, json).unwrap();
                files.push(file);
            }
        }
    }
    let output = Command::new(&tool)
        .args(["--strict", "--no-warn", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {tool}: {err}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "kubernetes-validate rejected manifests berth accepts:\n{report}"
    );
    let passed = report.lines().filter(|l| l.contains(" passed ")).count();
    assert!(
        passed >= files.len(),
        "expected every file to pass, got:\n{report}"
    );
}

/// The checked-in JSON Schema accepts every accepted manifest and rejects a typo, checked with
/// Python's `jsonschema` (draft 2020-12), which the kubernetes-validate venv already holds.
#[test]
fn checked_in_schema_accepts_the_accepted_manifests() {
    let Some(tool) = kubernetes_validate() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate (and its venv) is missing on CI"
        );
        eprintln!("SKIPPED: kubernetes-validate's venv not found");
        return;
    };
    let python = Path::new(&tool).with_file_name("python");
    if !python.exists() {
        assert!(std::env::var_os("CI").is_none(), "no python beside {tool}");
        eprintln!("SKIPPED: no python beside {tool}");
        return;
    }
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
bad = []
count = 0
for path in sys.argv[3:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        for item in (doc["items"] if doc.get("kind") == "List" else [doc]):
            count += 1
            for error in validator.iter_errors(item):
                bad.append(f"{path}: {item.get('kind')}: {list(error.path)}: {error.message[:300]}")
typo = yaml.safe_load(open(sys.argv[2]))
if validator.is_valid(typo):
    bad.append("the schema accepts an unknown field")
print("\n".join(bad) or f"ok {count}")
sys.exit(1 if bad else 0)
"#;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(common::repo_root().join("schema/berth.schema.json"))
        .arg(common::fixtures("invalid").join("unknown-field-typo.yaml"))
        .args(common::accepted_files())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schema/berth.schema.json disagrees with berth:\n{report}"
    );
}
