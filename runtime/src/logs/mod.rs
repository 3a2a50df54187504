//! Container log files in the CRI format, as containerd writes them and the kubelet reads them:
//!
//! ```text
//! 2026-11-22T23:00:00.123456789Z stdout F a complete line
//! 2026-11-22T23:00:00.200000000Z stderr P the first 16 KiB of a longer line
//! 2026-11-22T23:00:00.200000000Z stderr F ...and its end
//! ```
//!
//! One record per line: an RFC 3339 UTC timestamp with nanoseconds (always nine digits here; the
//! reader accepts any RFC 3339 form), the stream, the tag (`F` full line, `P` partial chunk) and
//! the message without its newline.
//!
//! * [`CriLogWriter`] (in the shim: synchronous, fixed buffers) turns the container's output into
//!   records and rotates the file by size: `container.log` -> `container.log.1` -> ... ->
//!   `container.log.<max_files - 1>`, the oldest dropped.
//! * [`read_logs`] yields [`LogRecord`]s with `P` chunks joined back into lines, optionally only
//!   the last N, optionally including rotated files, optionally following the file across
//!   rotations until a stop condition holds.
//!
//! Partial lines follow containerd (`internal/cri/io/logger.go`): output is split on newlines; a
//! line longer than [`MAX_LINE_SIZE`] becomes `P` records of exactly that size followed by an `F`
//! record with the rest; output without a trailing newline waits in a per-stream buffer (as
//! containerd's `bufio.Reader` does) until the newline arrives, the buffer fills, or the stream
//! ends — then [`CriLogWriter::flush_partial`] writes it as a `P` record, which readers show
//! without a newline.

mod reader;
mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

pub use reader::{LogReader, ReadOptions, read_logs};
pub use writer::{CriLogWriter, LogOptions};

/// The longest message one record carries; longer lines are split (containerd's default
/// `max_container_log_line_size`).
pub const MAX_LINE_SIZE: usize = 16 * 1024;

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn parse(field: &[u8]) -> Option<Self> {
        match field {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of container output as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// When the line (its first chunk, for a reassembled line) was written.
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// The line never ended: the stream closed (or the reader stopped) without a newline.
    pub partial: bool,
    /// The line without its newline; raw bytes (containers need not write UTF-8).
    pub message: Vec<u8>,
}

impl LogRecord {
    /// The message as text, invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }

    /// Write the record as `berth logs` shows it: optionally the timestamp and a space, the
    /// message, and a newline unless the line is partial.
    pub fn write_display(&self, out: &mut impl Write, timestamps: bool) -> std::io::Result<()> {
        if timestamps {
            let mut stamp = Vec::with_capacity(TIMESTAMP_LEN + 1);
            format_timestamp(&mut stamp, self.timestamp);
            stamp.push(b' ');
            out.write_all(&stamp)?;
        }
        out.write_all(&self.message)?;
        if !self.partial {
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Errors of this module; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write log file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read log file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write container logs to the output")]
    Output {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot rotate log file {from} to {to}")]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `container.log.<n>`: the n-th most recent rotated file of `path`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Length of a timestamp as the writer formats it.
const TIMESTAMP_LEN: usize = "2026-11-22T23:00:00.123456789Z".len();

/// Append `timestamp` as RFC 3339 UTC with nine fractional digits, without allocating.
fn format_timestamp(out: &mut Vec<u8>, timestamp: Timestamp) {
    let dt = jiff::tz::Offset::UTC.to_datetime(timestamp);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    );
}

/// Append one record, newline included.
fn format_record(
    out: &mut Vec<u8>,
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    msg: &[u8],
) {
    format_timestamp(out, timestamp);
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(msg);
    out.push(b'\n');
}

/// A record as stored: one chunk, not yet joined with its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawRecord<'a> {
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    message: &'a [u8],
}

/// Parse one stored line (without its newline). `None` if it is not a CRI record.
fn parse_record(line: &[u8]) -> Option<RawRecord<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let stream = Stream::parse(fields.next()?)?;
    // The tag field may carry more tags after `:`; the first is P or F.
    let tag = fields.next()?;
    let partial = match tag.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let message = fields.next().unwrap_or_default();
    Some(RawRecord {
        timestamp,
        stream,
        partial,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn formats_timestamps_with_nine_digits() {
        let mut out = Vec::new();
        format_timestamp(&mut out, ts("2026-11-22T23:00:00.1234Z"));
        assert_eq!(out, b"2026-11-22T23:00:00.123400000Z");
        assert_eq!(out.len(), TIMESTAMP_LEN);
        out.clear();
        format_timestamp(&mut out, ts("2026-01-02T03:04:05+01:00"));
        assert_eq!(out, b"2026-01-02T02:04:05.000000000Z");
    }

    #[test]
    fn formats_and_parses_records() {
        let mut out = Vec::new();
        let t = ts("2026-11-22T23:00:00.123456789Z");
        format_record(&mut out, t, Stream::Stderr, true, b"half a line");
        assert_eq!(
            out,
            b"2026-11-22T23:00:00.123456789Z stderr P half a line\n"
        );
        let record = parse_record(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            record,
            RawRecord {
                timestamp: t,
                stream: Stream::Stderr,
                partial: true,
                message: b"half a line",
            }
        );
    }

    #[test]
    fn parses_what_containerd_writes() {
        // Go's RFC3339Nano trims trailing zeros; extra tags follow a colon; messages keep spaces.
        let record = parse_record(b"2016-10-06T00:17:09.6Z stdout F:x  two  spaces ").unwrap();
        assert_eq!(record.timestamp, ts("2016-10-06T00:17:09.600Z"));
        assert!(!record.partial);
        assert_eq!(record.message, b" two  spaces ");
        let empty = parse_record(b"2016-10-06T00:17:09Z stdout F ").unwrap();
        assert_eq!(empty.message, b"");
        let bare = parse_record(b"2016-10-06T00:17:09Z stdout F").unwrap();
        assert_eq!(bare.message, b"");
    }

    #[test]
    fn rejects_malformed_records() {
        for line in [
            &b""[..],
            b"not a record",
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout X x",
            b"yesterday stdout F x",
            b"2016-10-06T00:17:09Z",
            b"\xff\xfe stdout F x",
        ] {
            assert_eq!(
                parse_record(line),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn displays_records() {
        let record = LogRecord {
            timestamp: ts("2026-11-22T23:00:00Z"),
            stream: Stream::Stdout,
            partial: false,
            message: b"hello".to_vec(),
        };
        let mut out = Vec::new();
        record.write_display(&mut out, true).unwrap();
        record.write_display(&mut out, false).unwrap();
        let partial = LogRecord {
            partial: true,
            ..record
        };
        partial.write_display(&mut out, false).unwrap();
        assert_eq!(out, b"2026-11-22T23:00:00.000000000Z hello\nhello\nhello");
    }

    #[test]
    fn names_rotated_files() {
        assert_eq!(
            rotated_path(Path::new("/var/log/c/container.log"), 3),
            PathBuf::from("/var/log/c/container.log.3")
        );
    }
}
