//! Reading manifests from files, directories (recursively: `.yaml`, `.yml`, `.json`, sorted)
//! and standard input (`-`). The only I/O of the crate.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use crate::parse::{Parsed, Source, parse_str};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("<stdin>: cannot read")]
    Stdin {
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid UTF-8 text", path.display())]
    NotUtf8 {
        path: PathBuf,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("{}: no .yaml, .yml or .json files in this directory", path.display())]
    EmptyDirectory { path: PathBuf },
}

pub type Result<T, E = LoadError> = std::result::Result<T, E>;

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The manifest files `path` names: itself, or the manifests under a directory, sorted.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    if !path.metadata().map_err(read_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| LoadError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() || (file_type.is_symlink() && path.is_dir()) {
                pending.push(path);
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
        return Err(LoadError::EmptyDirectory {
            path: path.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|source| LoadError::NotUtf8 {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses every input: files, directories, or `-` for `stdin`. Problems with the
/// manifests are collected in the result; only unreadable inputs are errors.
pub fn load(inputs: &[PathBuf], stdin: impl Read) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut stdin = Some(stdin);
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            if let Some(mut reader) = stdin.take() {
                reader
                    .read_to_string(&mut text)
                    .map_err(|source| LoadError::Stdin { source })?;
            }
            parsed.extend(parse_str(Source::Stdin, &text));
            continue;
        }
        for file in manifest_files(input)? {
            let text = read_text(&file)?;
            parsed.extend(parse_str(Source::File(file), &text));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NAME\n";

    #[test]
    fn reads_directories_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), NAMESPACE.replace("NAME", "b")).unwrap();
        std::fs::write(dir.path().join("a.yml"), NAMESPACE.replace("NAME", "a")).unwrap();
        std::fs::write(
            dir.path().join("nested/c.json"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a manifest").unwrap();
        let parsed = load(&[dir.path().to_owned()], std::io::empty()).unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let names: Vec<_> = parsed
            .documents
            .iter()
            .map(|d| d.object.name().to_owned())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn reads_stdin_once() {
        let parsed = load(&["-".into()], NAMESPACE.replace("NAME", "x").as_bytes()).unwrap();
        assert_eq!(parsed.documents.len(), 1);
        assert_eq!(parsed.documents[0].location.source.to_string(), "<stdin>");
    }

    #[test]
    fn missing_files_and_empty_directories_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(&[dir.path().to_owned()], std::io::empty()),
            Err(LoadError::EmptyDirectory { .. })
        ));
        assert!(matches!(
            load(&[dir.path().join("missing.yaml")], std::io::empty()),
            Err(LoadError::Read { .. })
        ));
    }
}
