//! Each manifest in tests/fixtures/invalid/ fails for one clear reason; the messages are
//! snapshots (tests/snapshots/), so a change in wording is a reviewed change.

mod common;

use berth_api::parse::{Parsed, Source};

fn check(path: &std::path::Path) -> Parsed {
    let text = std::fs::read_to_string(path).unwrap();
    let mut parsed = berth_api::parse_str(Source::Named(common::display_path(path)), &text);
    parsed.default_and_validate();
    parsed
}

#[test]
fn every_invalid_fixture_is_rejected_with_messages_worth_reading() {
    let files = common::manifest_files(&common::fixtures("invalid"));
    assert!(
        files.len() >= 20,
        "the invalid corpus shrank to {}",
        files.len()
    );
    for path in files {
        let parsed = check(&path);
        assert!(!parsed.errors.is_empty(), "{} was accepted", path.display());
        let rendered: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        for line in &rendered {
            assert!(
                line.starts_with(&format!("{}: document ", common::display_path(&path))),
                "{line}"
            );
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("invalid", rendered.join("\n"));
        });
    }
}

#[test]
fn all_problems_of_all_documents_are_reported() {
    let dir = common::fixtures("invalid");
    let mut parsed = berth_api::load::load(std::slice::from_ref(&dir), std::io::empty()).unwrap();
    parsed.default_and_validate();
    let files: std::collections::BTreeSet<_> = parsed
        .errors
        .iter()
        .map(|e| e.location().source.to_string())
        .collect();
    assert_eq!(
        files.len(),
        common::manifest_files(&dir).len(),
        "every file contributes at least one problem"
    );
    // bad-env-and-keys.yaml has problems in two documents.
    let documents: std::collections::BTreeSet<_> = parsed
        .errors
        .iter()
        .filter(|e| {
            e.location()
                .source
                .to_string()
                .ends_with("bad-env-and-keys.yaml")
        })
        .map(|e| e.location().document)
        .collect();
    assert_eq!(documents.into_iter().collect::<Vec<_>>(), [1, 2]);
}
