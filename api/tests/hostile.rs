//! Hostile input never panics: it is rejected with an error (the same path the fuzz target
//! drives, on stable).

use berth_api::parse::{Source, parse_and_validate};

fn assert_rejected(name: &str, text: &str) {
    let result = std::panic::catch_unwind(|| parse_and_validate(Source::Named(name.into()), text));
    match result {
        Ok(Ok(documents)) => panic!("{name}: accepted {} objects", documents.len()),
        Ok(Err(errors)) => assert!(!errors.0.is_empty(), "{name}: an error without problems"),
        Err(_) => panic!("{name}: panicked"),
    }
}

fn deep(open: &str, close: &str, depth: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}{}",
        open.repeat(depth),
        close.repeat(depth)
    )
}

#[test]
fn nasty_inputs_are_rejected_without_panicking() {
    let billion_laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n\
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n\
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n\
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: *i}\n";
    let cases: Vec<(&str, String)> = vec![
        ("deep flow sequences", deep("[", "]", 100_000)),
        ("deep flow mappings", deep("{a: ", "}", 50_000)),
        ("deep block nesting", format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\nspec:\n{}", (1..3000).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>())),
        ("huge integer", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 99999999999999999999999999999999999999999999}\n".into()),
        ("huge quantity", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, resources: {limits: {memory: 1e99999999999999999999}}}]}\n".into()),
        ("negative replicas", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: -2147483648, template: {spec: {containers: []}}}\n".into()),
        ("billion laughs", billion_laughs.to_owned()),
        ("unknown anchor", "apiVersion: v1\nkind: ConfigMap\nmetadata: *nope\n".into()),
        ("recursive merge key", "a: &a {<<: *a}\n".into()),
        ("binary garbage", String::from_utf8_lossy(&(0u8..=255).cycle().take(4096).collect::<Vec<_>>()).into_owned()),
        ("nul bytes", "apiVersion: v1\0\nkind: Pod\0".into()),
        ("tabs", "apiVersion: v1\n\tkind: Pod\n".into()),
        ("scalar document", "just a string\n".into()),
        ("number document", "42\n".into()),
        ("kind is a map", "apiVersion: v1\nkind: {a: b}\n".into()),
        ("list of garbage", "apiVersion: v1\nkind: List\nitems: [1, [2], {}, null]\n".into()),
        ("list items not a list", "apiVersion: v1\nkind: List\nitems: 3\n".into()),
        ("tagged values", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: !!binary aGVsbG8=}\ndata: !custom {a: b}\n".into()),
        ("duplicate keys", "apiVersion: v1\nkind: ConfigMap\nkind: ConfigMap\nmetadata: {name: x}\n".into()),
        ("many documents", "---\nfoo\n".repeat(10_000)),
        ("long line", format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n", "x".repeat(1_000_000))),
        ("unicode names", "apiVersion: v1\nkind: Namespace\nmetadata: {name: \"n\u{e4}me\u{1F600}\"}\n".into()),
        ("windows line endings", "apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: BAD\r\n".into()),
        ("port overflow", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 4294967296}]}\n".into()),
        ("percent overflow", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {selector: {matchLabels: {a: b}}, strategy: {rollingUpdate: {maxSurge: 99999999999999999999%}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n".into()),
    ];
    for (name, text) in &cases {
        let started = std::time::Instant::now();
        assert_rejected(name, text);
        eprintln!("{name}: rejected in {:?}", started.elapsed());
    }
}

#[test]
fn empty_input_is_no_objects_and_no_error() {
    for text in ["", "\n", "---\n", "# comment\n---\n---\n", "\u{feff}"] {
        assert_eq!(
            parse_and_validate(Source::Named("empty".into()), text).unwrap(),
            []
        );
    }
}
