//! Content digests (`sha256:<hex>`) and streams that compute them on the way through.
//!
//! The store is content-addressed by SHA-256 only, as every OCI image in practice is; a descriptor
//! naming another algorithm is refused with [`DigestError::UnsupportedAlgorithm`] rather than
//! trusted unverified.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Length of a SHA-256 digest in hex characters.
const SHA256_HEX_LEN: usize = 64;
/// Hex characters shown for a digest in tables (as `docker images` shows image ids).
const SHORT_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest {value:?} is malformed: expected `sha256:` and 64 lowercase hex characters")]
    Malformed { value: String },
    #[error("digest {value:?} uses algorithm {algorithm:?}; only sha256 is supported")]
    UnsupportedAlgorithm { value: String, algorithm: String },
}

/// A verified-format SHA-256 content digest, `sha256:` followed by 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 hex>`.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = value.split_once(':') else {
            return Err(DigestError::Malformed {
                value: value.to_owned(),
            });
        };
        if algorithm != "sha256" {
            let known = matches!(algorithm, "sha384" | "sha512" | "blake3");
            return Err(if known {
                DigestError::UnsupportedAlgorithm {
                    value: value.to_owned(),
                    algorithm: algorithm.to_owned(),
                }
            } else {
                DigestError::Malformed {
                    value: value.to_owned(),
                }
            });
        }
        if !is_lower_hex(hex) || hex.len() != SHA256_HEX_LEN {
            return Err(DigestError::Malformed {
                value: value.to_owned(),
            });
        }
        Ok(Digest(value.to_owned()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        Digest(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, used as the file name under `blobs/sha256/` and `layers/sha256/`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The first 12 hex characters, as shown in tables.
    pub fn short(&self) -> &str {
        &self.hex()[..SHORT_LEN]
    }
}

/// Whether `s` is non-empty and only lowercase hex digits.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Digest::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// Error payload of a stream that grew past its limit (see [`HashingReader::with_limit`]).
#[derive(Debug, thiserror::Error)]
#[error("stream is larger than the limit of {limit} bytes")]
pub struct LimitExceeded {
    pub limit: u64,
}

/// A reader that hashes and counts everything read through it and fails once more than `limit`
/// bytes went by (a decompression bomb stops there instead of filling the disk).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, u64::MAX)
    }

    pub fn with_limit(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
        }
    }

    /// Reads the rest of the stream (so trailing bytes count too) and returns digest and size.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(LimitExceeded { limit: self.limit }));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn parse_rejects_malformed_and_foreign_digests() {
        for bad in [
            "",
            "sha256:",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:../../../../etc/passwd",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ] {
            assert!(
                matches!(Digest::parse(bad), Err(DigestError::Malformed { .. })),
                "{bad:?} should be malformed"
            );
        }
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert!(matches!(
            Digest::parse(&sha512),
            Err(DigestError::UnsupportedAlgorithm { algorithm, .. }) if algorithm == "sha512"
        ));
    }

    #[test]
    fn hashing_reader_counts_trailing_bytes_and_enforces_its_limit() {
        let data = b"hello world".to_vec();
        let mut reader = HashingReader::new(&data[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).unwrap();
        let (digest, size) = reader.finish().unwrap();
        assert_eq!(digest, Digest::of(&data));
        assert_eq!(size, 11);

        let mut limited = HashingReader::with_limit(&data[..], 4);
        let err = io::copy(&mut limited, &mut io::sink()).unwrap_err();
        assert!(err.get_ref().unwrap().is::<LimitExceeded>(), "{err}");
    }

    #[test]
    fn hashing_writer_matches_digest_of() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        let (inner, digest, size) = writer.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(size, 3);
        assert_eq!(digest, Digest::of(b"abc"));
    }
}
