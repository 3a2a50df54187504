//! Scraping helpers shared by the test binaries.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

/// The text exposition of a registry holding only `collector`, as `GET /metrics` serves it.
pub fn scrape(collector: impl Collector + 'static) -> String {
    let registry = Registry::new();
    registry.register(Box::new(collector)).expect("register");
    encode(&registry)
}

pub fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("encode");
    String::from_utf8(out).expect("utf-8 exposition")
}

/// The sample lines of family `name` (not its `# HELP`/`# TYPE` lines, not other families whose
/// names start the same).
pub fn series(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(str::to_owned)
        .collect()
}

/// Polls `scrape` until `done` holds on its output (5 s at most), then returns that output.
pub async fn eventually(scrape: impl Fn() -> String, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape();
        if done(&text) {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not reached; last scrape:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `promtool check metrics` on `text`. Returns false (after printing why) when promtool is
/// not installed, unless `CI` is set, where its absence fails the test: CI installs the
/// `prometheus` package.
pub fn promtool_check(text: &str) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required in CI: install the Debian package `prometheus`"
            );
            eprintln!("note: promtool not installed (apt-get install prometheus); check skipped");
            return false;
        }
        Err(err) => panic!("cannot run promtool: {err}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}
