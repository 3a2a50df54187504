//! Image references as users type them: `name[:tag]`, `name@sha256:…`, `sha256:…` or a hex prefix
//! of a manifest digest.
//!
//! Names are kept verbatim (`busybox` and `docker.io/library/busybox` are different images); only
//! the tag is defaulted to `latest`. The tag is whatever follows the last `:` after the last `/`,
//! so `localhost:5000/app` is the name `localhost:5000/app` with tag `latest`.

use std::fmt;

use super::digest::{Digest, DigestError, is_lower_hex};

/// Tag given to a name without one.
pub const DEFAULT_TAG: &str = "latest";
/// Shortest digest prefix accepted, as docker does for image ids.
pub const MIN_PREFIX_LEN: usize = 6;
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error(
        "image reference {reference:?}: name {name:?} may only contain ASCII letters, digits, \
         and `.`, `_`, `-`, `/`, `:` (at most {MAX_NAME_LEN} characters)"
    )]
    InvalidName { reference: String, name: String },
    #[error(
        "image reference {reference:?}: tag {tag:?} must be 1 to {MAX_TAG_LEN} of [A-Za-z0-9_.-], \
         not starting with `.` or `-`"
    )]
    InvalidTag { reference: String, tag: String },
    #[error("image reference {reference:?}: bad digest")]
    InvalidDigest {
        reference: String,
        #[source]
        source: DigestError,
    },
}

/// A parsed reference. Whether a bare hex string is a name or a digest prefix is decided by the
/// store (a name wins, as in docker), so parsing keeps both readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `name:tag`; `prefix` is set when the input could also be a manifest digest prefix.
    Tagged {
        name: String,
        tag: String,
        prefix: Option<String>,
    },
    /// `sha256:<64 hex>` or `name@sha256:<64 hex>`.
    Digest {
        name: Option<String>,
        digest: Digest,
    },
    /// `sha256:<hex prefix>`: a digest prefix and nothing else.
    Prefix(String),
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        if reference.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some((name, digest)) = reference.split_once('@') {
            let digest = parse_digest(reference, digest)?;
            validate_name(reference, name)?;
            return Ok(Reference::Digest {
                name: Some(name.to_owned()),
                digest,
            });
        }
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if hex.len() < 64 && hex.len() >= MIN_PREFIX_LEN && is_lower_hex(hex) {
                return Ok(Reference::Prefix(hex.to_owned()));
            }
            let digest = parse_digest(reference, reference)?;
            return Ok(Reference::Digest { name: None, digest });
        }
        let (name, tag) = split_tag(reference);
        validate_name(reference, name)?;
        let tag = match tag {
            Some(tag) => {
                validate_tag(reference, tag)?;
                tag
            }
            None => DEFAULT_TAG,
        };
        let could_be_prefix =
            reference.len() >= MIN_PREFIX_LEN && reference.len() <= 64 && is_lower_hex(reference);
        Ok(Reference::Tagged {
            name: name.to_owned(),
            tag: tag.to_owned(),
            prefix: could_be_prefix.then(|| reference.to_owned()),
        })
    }

    /// Parses a reference that must name a tag (`--tag` of import and build).
    pub fn parse_tagged(reference: &str) -> Result<TaggedName, ReferenceError> {
        let (name, tag) = split_tag(reference);
        validate_name(reference, name)?;
        let tag = tag.unwrap_or(DEFAULT_TAG);
        validate_tag(reference, tag)?;
        Ok(TaggedName {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

/// A `name:tag` pair, the key of the store's index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaggedName {
    pub name: String,
    pub tag: String,
}

impl fmt::Display for TaggedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn parse_digest(reference: &str, digest: &str) -> Result<Digest, ReferenceError> {
    Digest::parse(digest).map_err(|source| ReferenceError::InvalidDigest {
        reference: reference.to_owned(),
        source,
    })
}

/// Splits `name[:tag]`; the tag separator is the last `:` after the last `/`.
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(&reference[last_slash + i + 1..]),
        ),
        None => (reference, None),
    }
}

fn validate_name(reference: &str, name: &str) -> Result<(), ReferenceError> {
    let valid_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':');
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(valid_char)
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && !name.ends_with('/')
        && !name.contains("//")
        && name.split('/').all(|part| part != "." && part != "..");
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::InvalidName {
            reference: reference.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn validate_tag(reference: &str, tag: &str) -> Result<(), ReferenceError> {
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !tag.starts_with(['.', '-']);
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            reference: reference.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn tagged(name: &str, tag: &str) -> Reference {
        Reference::Tagged {
            name: name.into(),
            tag: tag.into(),
            prefix: None,
        }
    }

    #[test]
    fn names_keep_their_spelling_and_default_the_tag() {
        assert_eq!(
            Reference::parse("busybox").unwrap(),
            tagged("busybox", "latest")
        );
        assert_eq!(
            Reference::parse("busybox:1.36").unwrap(),
            tagged("busybox", "1.36")
        );
        assert_eq!(
            Reference::parse("docker.io/library/busybox:latest").unwrap(),
            tagged("docker.io/library/busybox", "latest")
        );
        assert_eq!(
            Reference::parse("localhost:5000/app").unwrap(),
            tagged("localhost:5000/app", "latest")
        );
        assert_eq!(
            Reference::parse("localhost:5000/app:v2").unwrap(),
            tagged("localhost:5000/app", "v2")
        );
    }

    #[test]
    fn digests_and_prefixes() {
        let full = format!("sha256:{HEX}");
        assert_eq!(
            Reference::parse(&full).unwrap(),
            Reference::Digest {
                name: None,
                digest: Digest::parse(&full).unwrap()
            }
        );
        assert_eq!(
            Reference::parse(&format!("busybox@{full}")).unwrap(),
            Reference::Digest {
                name: Some("busybox".into()),
                digest: Digest::parse(&full).unwrap()
            }
        );
        assert_eq!(
            Reference::parse("sha256:e3b0c4").unwrap(),
            Reference::Prefix("e3b0c4".into())
        );
        assert_eq!(
            Reference::parse("e3b0c442").unwrap(),
            Reference::Tagged {
                name: "e3b0c442".into(),
                tag: "latest".into(),
                prefix: Some("e3b0c442".into())
            }
        );
        // Too short to be a prefix: only a name.
        assert_eq!(
            Reference::parse("e3b0c").unwrap(),
            tagged("e3b0c", "latest")
        );
    }

    #[test]
    fn bad_references_are_rejected_with_what_was_expected() {
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        for bad in ["busybox:", "busybox:-x", "busybox:a b", "busybox:.hidden"] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ReferenceError::InvalidTag { .. })
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "/abs",
            "a//b",
            "a/../b",
            "bad name",
            "name/",
            "-x",
            "ünïcode",
        ] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ReferenceError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Reference::parse("busybox@sha256:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        let err = Reference::parse("busybox:").unwrap_err().to_string();
        assert!(
            err.contains("\"busybox:\"") && err.contains("[A-Za-z0-9_.-]"),
            "{err}"
        );
    }

    #[test]
    fn parse_tagged_defaults_to_latest() {
        let t = Reference::parse_tagged("demo").unwrap();
        assert_eq!(t.to_string(), "demo:latest");
        assert_eq!(
            Reference::parse_tagged("demo:v1").unwrap().to_string(),
            "demo:v1"
        );
        assert!(Reference::parse_tagged("demo@sha256:abc").is_err());
    }
}
