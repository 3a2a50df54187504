//! The checked-in JSON Schema (schema/) is the generated one.

mod common;

use berth_api::{object::KINDS, schema};

const REGENERATE: &str =
    "regenerate with: BERTH_UPDATE_SCHEMA=1 cargo test -p berth-api --test schema";

fn check(file: &str, generated: &str) {
    let path = common::repo_root().join("schema").join(file);
    if std::env::var_os("BERTH_UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}; {REGENERATE}", path.display()));
    assert!(
        checked_in == generated,
        "{} differs from the schema the code generates; {REGENERATE}",
        path.display()
    );
}

#[test]
fn checked_in_schemas_are_up_to_date() {
    check(
        "berth.schema.json",
        &schema::to_pretty_json(&schema::all_kinds()),
    );
    for info in KINDS {
        let file = format!("{}.schema.json", info.kind.to_ascii_lowercase());
        check(
            &file,
            &schema::to_pretty_json(&schema::for_kind(info.kind).unwrap()),
        );
    }
}
