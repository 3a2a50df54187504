//! The shim side: container output -> CRI records in a size-rotated file.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{LogError, MAX_LINE_SIZE, Result, Stream, TIMESTAMP_LEN, format_record, rotated_path};

/// Rotation settings (the kubelet's `containerLogMaxSize` / `containerLogMaxFiles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogOptions {
    /// Rotate before the current file would grow beyond this.
    pub max_size_bytes: u64,
    /// Files kept, the current one included: `container.log` plus up to `max_files - 1` rotated
    /// ones. 0 and 1 both mean no rotated file is kept.
    pub max_files: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            max_size_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Longest record: timestamp, ` stdout P `, a full chunk, newline.
const MAX_RECORD_LEN: usize = TIMESTAMP_LEN + " stdout P ".len() + MAX_LINE_SIZE + 1;

/// Writes container output as CRI records. Single-threaded and allocation-free after `open`:
/// one line buffer per stream and one record buffer, all sized once.
///
/// Each record goes to the file in one `write(2)` on an `O_APPEND | O_CLOEXEC` descriptor, so a
/// reader in another process sees whole records as soon as they are written, and nothing is
/// lost if the daemon restarts while the shim keeps writing.
pub struct CriLogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    options: LogOptions,
    /// Per stream ([`Stream::index`]): the start of a line whose newline has not arrived.
    pending: [Vec<u8>; 2],
    /// When each pending line started.
    pending_since: [Option<Timestamp>; 2],
    record: Vec<u8>,
    clock: fn() -> Timestamp,
}

impl std::fmt::Debug for CriLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriLogWriter")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl CriLogWriter {
    /// Open (or create) the log file at `path` for appending.
    pub fn open(path: impl Into<PathBuf>, options: LogOptions) -> Result<Self> {
        let path = path.into();
        let (file, size) = open_append(&path)?;
        let mut writer = Self {
            path,
            file,
            size,
            options,
            pending: [
                Vec::with_capacity(MAX_LINE_SIZE),
                Vec::with_capacity(MAX_LINE_SIZE),
            ],
            pending_since: [None, None],
            record: Vec::with_capacity(MAX_RECORD_LEN),
            clock: Timestamp::now,
        };
        writer.terminate_torn_record()?;
        Ok(writer)
    }

    /// Use `clock` for record timestamps instead of the system clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.clock = clock;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record `data` read from the container's `stream`: every complete line becomes an `F`
    /// record (after `P` records if it is longer than [`MAX_LINE_SIZE`]); a trailing piece
    /// without newline is kept until its newline arrives.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    self.append(stream, &rest[..end])?;
                    self.emit_pending(stream, false)?;
                    rest = &rest[end + 1..];
                }
                None => {
                    self.append(stream, rest)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// At the end of the streams: write what is buffered without a newline as `P` records.
    pub fn flush_partial(&mut self) -> Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.pending[stream.index()].is_empty() {
                self.emit_pending(stream, true)?;
            }
        }
        Ok(())
    }

    /// Add part of a line to the stream's buffer; whenever the buffer is full and more of the
    /// line follows, the full buffer goes out as a `P` record.
    fn append(&mut self, stream: Stream, mut bytes: &[u8]) -> Result<()> {
        let i = stream.index();
        if self.pending_since[i].is_none() {
            self.pending_since[i] = Some((self.clock)());
        }
        while !bytes.is_empty() {
            if self.pending[i].len() == MAX_LINE_SIZE {
                self.emit_pending(stream, true)?;
                self.pending_since[i] = Some((self.clock)());
            }
            let take = bytes.len().min(MAX_LINE_SIZE - self.pending[i].len());
            self.pending[i].extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// Write the stream's buffer as one record and empty it.
    fn emit_pending(&mut self, stream: Stream, partial: bool) -> Result<()> {
        let i = stream.index();
        let timestamp = self.pending_since[i].take().unwrap_or_else(self.clock);
        self.record.clear();
        format_record(
            &mut self.record,
            timestamp,
            stream,
            partial,
            &self.pending[i],
        );
        self.pending[i].clear();
        let len = self.record.len() as u64;
        if self.size > 0 && self.size + len > self.options.max_size_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(&self.record)
            .map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.size += len;
        Ok(())
    }

    /// `container.log.<n>` -> `.<n+1>` (the oldest dropped), `container.log` -> `.1`, then a
    /// fresh `container.log`.
    fn rotate(&mut self) -> Result<()> {
        let keep = self.options.max_files.saturating_sub(1);
        if keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            for n in (1..keep).rev() {
                rename_if_present(
                    &rotated_path(&self.path, n),
                    &rotated_path(&self.path, n + 1),
                )?;
            }
            rename_if_present(&self.path, &rotated_path(&self.path, 1))?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        tracing::debug!(path = %self.path.display(), keep, "rotated container log");
        Ok(())
    }

    /// A crash in the middle of a record leaves a line without newline at the end of the file;
    /// end it so the next record starts on its own line (readers skip the torn one).
    fn terminate_torn_record(&mut self) -> Result<()> {
        if self.size == 0 {
            return Ok(());
        }
        let read_err = |source| LogError::Read {
            path: self.path.clone(),
            source,
        };
        let mut reader = File::open(&self.path).map_err(read_err)?;
        reader.seek(SeekFrom::End(-1)).map_err(read_err)?;
        let mut last = [0u8; 1];
        reader.read_exact(&mut last).map_err(read_err)?;
        if last[0] != b'\n' {
            self.file
                .write_all(b"\n")
                .map_err(|source| LogError::Write {
                    path: self.path.clone(),
                    source,
                })?;
            self.size += 1;
        }
        Ok(())
    }
}

/// Open for appending (`O_APPEND`; std adds `O_CLOEXEC`), creating with mode 0640.
fn open_append(path: &Path) -> Result<(File, u64)> {
    let open_err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(open_err)?;
    let size = file.metadata().map_err(open_err)?.len();
    Ok((file, size))
}

fn rename_if_present(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::Rotate {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            source,
        }),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_clock() -> Timestamp {
        "2026-11-22T23:00:00.123456789Z".parse().unwrap()
    }

    fn open(dir: &Path, options: LogOptions) -> CriLogWriter {
        CriLogWriter::open(dir.join("container.log"), options)
            .unwrap()
            .with_clock(fixed_clock)
    }

    fn content(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    const TS: &str = "2026-11-22T23:00:00.123456789Z";

    #[test]
    fn writes_one_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), LogOptions::default());
        writer.write(Stream::Stdout, b"hello\n\nworld\n").unwrap();
        writer.write(Stream::Stderr, b"oops\n").unwrap();
        assert_eq!(
            content(writer.path()),
            format!(
                "{TS} stdout F hello\n{TS} stdout F \n{TS} stdout F world\n{TS} stderr F oops\n"
            )
        );
    }

    #[test]
    fn buffers_unterminated_output_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), LogOptions::default());
        writer.write(Stream::Stdout, b"hel").unwrap();
        writer.write(Stream::Stderr, b"err").unwrap();
        assert_eq!(content(writer.path()), "", "nothing until a newline");
        writer.write(Stream::Stdout, b"lo\nnext").unwrap();
        assert_eq!(content(writer.path()), format!("{TS} stdout F hello\n"));
        writer.flush_partial().unwrap();
        assert_eq!(
            content(writer.path()),
            format!("{TS} stdout F hello\n{TS} stdout P next\n{TS} stderr P err\n")
        );
        // Nothing left to flush.
        writer.flush_partial().unwrap();
        assert_eq!(content(writer.path()).lines().count(), 3);
    }

    #[test]
    fn splits_long_lines_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), LogOptions::default());
        let long = vec![b'a'; 2 * MAX_LINE_SIZE + 10];
        // Delivered in odd-sized pieces, as a pipe would.
        for piece in long.chunks(4093) {
            writer.write(Stream::Stdout, piece).unwrap();
        }
        writer.write(Stream::Stdout, b"\n").unwrap();
        let exact = vec![b'b'; MAX_LINE_SIZE];
        writer.write(Stream::Stdout, &exact).unwrap();
        writer.write(Stream::Stdout, b"\n").unwrap();

        let text = content(writer.path());
        let records: Vec<(&str, usize)> = text
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let (_, _, tag, msg) = (f.next(), f.next(), f.next().unwrap(), f.next().unwrap());
                (tag, msg.len())
            })
            .collect();
        assert_eq!(
            records,
            vec![
                ("P", MAX_LINE_SIZE),
                ("P", MAX_LINE_SIZE),
                ("F", 10),
                ("F", MAX_LINE_SIZE),
            ],
            "a line of exactly the maximum is one F record"
        );
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let record_len = format!("{TS} stdout F line-0\n").len() as u64;
        let options = LogOptions {
            max_size_bytes: 2 * record_len,
            max_files: 3,
        };
        let mut writer = open(dir.path(), options);
        for i in 0..7 {
            writer
                .write(Stream::Stdout, format!("line-{i}\n").as_bytes())
                .unwrap();
        }
        let log = writer.path().to_path_buf();
        assert_eq!(
            content(&log),
            format!("{TS} stdout F line-6\n"),
            "two records per file"
        );
        assert_eq!(
            content(&rotated_path(&log, 1)),
            format!("{TS} stdout F line-4\n{TS} stdout F line-5\n")
        );
        assert_eq!(
            content(&rotated_path(&log, 2)),
            format!("{TS} stdout F line-2\n{TS} stdout F line-3\n")
        );
        assert!(
            !rotated_path(&log, 3).exists(),
            "lines 0 and 1 were dropped"
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
    }

    #[test]
    fn max_files_one_keeps_only_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            max_size_bytes: 10,
            max_files: 1,
        };
        let mut writer = open(dir.path(), options);
        writer.write(Stream::Stdout, b"first\nsecond\n").unwrap();
        assert_eq!(content(writer.path()), format!("{TS} stdout F second\n"));
        assert!(!rotated_path(writer.path(), 1).exists());
    }

    #[test]
    fn reopening_appends_and_ends_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(&path, format!("{TS} stdout F before\n{TS} stdout F tor")).unwrap();
        let mut writer = CriLogWriter::open(&path, LogOptions::default())
            .unwrap()
            .with_clock(fixed_clock);
        writer.write(Stream::Stdout, b"after\n").unwrap();
        assert_eq!(
            content(&path),
            format!("{TS} stdout F before\n{TS} stdout F tor\n{TS} stdout F after\n")
        );
    }

    #[test]
    fn uses_the_real_clock_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            CriLogWriter::open(dir.path().join("container.log"), LogOptions::default()).unwrap();
        let before = Timestamp::now();
        writer.write(Stream::Stdout, b"now\n").unwrap();
        let text = content(writer.path());
        let stamp: Timestamp = text.split(' ').next().unwrap().parse().unwrap();
        assert!(stamp >= before && stamp <= Timestamp::now(), "{text}");
        assert_eq!(text.split(' ').next().unwrap().len(), TIMESTAMP_LEN);
    }

    #[test]
    fn open_fails_with_the_path_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/container.log");
        let err = CriLogWriter::open(&path, LogOptions::default()).unwrap_err();
        assert!(
            matches!(&err, LogError::Open { path: p, .. } if *p == path),
            "{err}"
        );
    }
}
