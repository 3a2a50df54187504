//! Fuzzes the whole manifest pipeline: YAML stream → objects → defaults → validation.
//! It must never panic, whatever the bytes. Run (stable toolchain):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_validate -- -max_total_time=60`
#![no_main]

use berth_api::parse::{Source, parse_and_validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(documents) = parse_and_validate(Source::Named("fuzz".into()), text) {
            // Whatever is accepted must serialize and parse back to the same objects.
            for document in documents {
                let json = to_json(&document.object);
                let again = parse_and_validate(Source::Named("fuzz-roundtrip".into()), &json)
                    .expect("berth's own rendering of an accepted object is accepted");
                assert_eq!(again.len(), 1);
                assert_eq!(again[0].object, document.object);
            }
        }
    }
});

fn to_json(object: &berth_api::Object) -> String {
    serde_json::to_string(object).expect("objects serialize")
}
