//! The reading side: `berth logs [-f] [--tail N] [--timestamps]`.
//!
//! Following polls (every 50 ms) rather than using inotify: simple, and correct on every
//! filesystem. A rotation is noticed when `container.log` names another inode than the open
//! file; the reader then finishes the old file, reads the files rotated after it (found by inode
//! among `container.log.1`, `.2`, ...) and continues with the new `container.log`, so several
//! rotations between two polls lose nothing. Lines are lost only if the writer rotates the
//! reader's file out of existence (beyond `max_files`) before the reader catches up.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LogError, LogRecord, Result, parse_record, rotated_path};

/// How often a follower looks for new data or a rotation.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// Read size.
const CHUNK: usize = 64 * 1024;

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Only the last N lines present when reading starts (`--tail N`); later lines all follow.
    pub tail: Option<usize>,
    /// Show timestamps; used by [`LogReader::copy_to`] (records always carry them).
    pub timestamps: bool,
    /// Keep reading new lines, across rotations, until the stop condition holds (`-f`).
    pub follow: bool,
    /// Start with the rotated files (`container.log.<n>` … `.1`), oldest first.
    pub include_rotated: bool,
}

/// Open the log at `path` (the current `container.log`) for reading.
pub fn read_logs(path: &Path, options: ReadOptions) -> Result<LogReader> {
    LogReader::open(path, options)
}

/// An iterator over [`LogRecord`]s: `P` chunks joined into lines, malformed lines skipped with a
/// warning. When following, `next` blocks (polling every 50 ms) until a line arrives or the stop
/// condition holds; after the condition holds it reads what is left once more and ends.
pub struct LogReader {
    path: PathBuf,
    options: ReadOptions,
    stop: Box<dyn FnMut() -> bool + Send>,
    ready: VecDeque<LogRecord>,
    /// Per stream: a line whose `F` record has not been read yet.
    assembling: [Option<LogRecord>; 2],
    /// The file being followed, its identity, and the start of a line not fully read.
    current: Option<Followed>,
    /// Reading what was there at open (where `tail` applies), not following yet.
    initial: bool,
    done: bool,
}

struct Followed {
    file: File,
    identity: (u64, u64),
    partial_line: Vec<u8>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("ready", &self.ready.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Read what is there now; with `follow`, keep the current file open for more.
    pub fn open(path: &Path, options: ReadOptions) -> Result<Self> {
        let mut reader = Self {
            path: path.to_path_buf(),
            options,
            stop: Box::new(|| false),
            ready: VecDeque::new(),
            assembling: [None, None],
            current: None,
            initial: true,
            done: false,
        };
        if options.include_rotated {
            let mut rotated = Vec::new();
            for n in 1.. {
                let file = rotated_path(path, n);
                if !file.exists() {
                    break;
                }
                rotated.push(file);
            }
            for file in rotated.iter().rev() {
                match std::fs::read(file) {
                    Ok(content) => reader.consume(file, &content),
                    // Rotated away between the listing and the read.
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(LogError::Read {
                            path: file.clone(),
                            source,
                        });
                    }
                }
            }
        }
        let mut current = open_followed(path)?;
        reader.drain(&mut current)?;
        reader.current = Some(current);
        if !options.follow {
            reader.finish();
        }
        reader.initial = false;
        Ok(reader)
    }

    /// When following, stop once `stop` returns true (e.g. the container is no longer running)
    /// and everything written so far has been read. Without it, following never ends.
    pub fn stop_when(mut self, stop: impl FnMut() -> bool + Send + 'static) -> Self {
        self.stop = Box::new(stop);
        self
    }

    /// Write every record as `berth logs` shows it (see [`LogRecord::write_display`]).
    pub fn copy_to(self, out: &mut impl std::io::Write) -> Result<()> {
        let timestamps = self.options.timestamps;
        for record in self {
            record?
                .write_display(out, timestamps)
                .map_err(|source| LogError::Output { source })?;
        }
        Ok(())
    }

    /// Feed stored bytes (whole lines only) through the parser and the P/F assembler.
    fn consume(&mut self, file: &Path, content: &[u8]) {
        for line in content.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let Some(raw) = parse_record(line) else {
                tracing::warn!(
                    path = %file.display(),
                    line = %String::from_utf8_lossy(line),
                    "skipping malformed log line"
                );
                continue;
            };
            let slot = &mut self.assembling[raw.stream.index()];
            let record = match slot.take() {
                Some(mut started) => {
                    started.message.extend_from_slice(raw.message);
                    started
                }
                None => LogRecord {
                    timestamp: raw.timestamp,
                    stream: raw.stream,
                    partial: false,
                    message: raw.message.to_vec(),
                },
            };
            if raw.partial {
                *slot = Some(record);
            } else {
                self.push(record);
            }
        }
    }

    fn push(&mut self, record: LogRecord) {
        self.ready.push_back(record);
        if self.initial
            && let Some(tail) = self.options.tail
        {
            while self.ready.len() > tail {
                self.ready.pop_front();
            }
        }
    }

    /// Read `followed` to its end; complete lines are consumed, an incomplete one kept.
    /// Returns whether anything was read.
    fn drain(&mut self, followed: &mut Followed) -> Result<bool> {
        let mut any = false;
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = followed
                .file
                .read(&mut chunk)
                .map_err(|source| LogError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(any);
            }
            any = true;
            followed.partial_line.extend_from_slice(&chunk[..n]);
            if let Some(end) = followed.partial_line.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = followed.partial_line.drain(..=end).collect();
                let path = self.path.clone();
                self.consume(&path, &complete);
            }
        }
    }

    /// One follow step: new data in the current file, or a rotation. Returns whether there
    /// was anything new.
    fn poll(&mut self) -> Result<bool> {
        let mut current = self.current.take().expect("following a file");
        let result = self.poll_file(&mut current);
        self.current = Some(current);
        result
    }

    fn poll_file(&mut self, current: &mut Followed) -> Result<bool> {
        if self.drain(current)? {
            return Ok(true);
        }
        // Open first and take the identity from the open file: a rotation between a `stat` of
        // the path and its `open` would otherwise skip a file or find no file at all.
        let next = match open_followed(&self.path) {
            Ok(next) => next,
            // Between the rotation's rename/removal and the new file's creation.
            Err(LogError::Open { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        if next.identity == current.identity {
            return Ok(false);
        }
        // Rotated: first what was written to the old file before the rename, then the files
        // rotated after it (more than one rotation may have happened since the last poll), up
        // to the file just opened, which may itself have been rotated since, then that file.
        self.drain(current)?;
        if !current.partial_line.is_empty() {
            tracing::warn!(path = %self.path.display(), "dropping torn record at end of rotated log");
        }
        for file in self.rotated_after(current.identity)?.iter().rev() {
            let content = std::fs::File::open(file).and_then(|mut f| {
                let meta = f.metadata()?;
                if (meta.dev(), meta.ino()) == next.identity {
                    return Ok(None);
                }
                let mut content = Vec::new();
                f.read_to_end(&mut content)?;
                Ok(Some(content))
            });
            match content {
                Ok(Some(content)) => self.consume(file, &content),
                // The file just opened, rotated meanwhile: it is read through its descriptor.
                Ok(None) => break,
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LogError::Read {
                        path: file.clone(),
                        source,
                    });
                }
            }
        }
        *current = next;
        tracing::debug!(path = %self.path.display(), "following rotated log");
        self.drain(current)?;
        Ok(true)
    }

    /// The rotated files newer than the file with `identity`, newest first: `.1`, `.2`, ...
    /// up to that file (or all of them if it was already dropped).
    fn rotated_after(&self, identity: (u64, u64)) -> Result<Vec<PathBuf>> {
        let mut newer = Vec::new();
        for n in 1.. {
            let file = rotated_path(&self.path, n);
            match std::fs::metadata(&file) {
                Ok(meta) if (meta.dev(), meta.ino()) == identity => break,
                Ok(_) => newer.push(file),
                Err(err) if err.kind() == ErrorKind::NotFound => break,
                Err(source) => return Err(LogError::Read { path: file, source }),
            }
        }
        Ok(newer)
    }

    /// No more data will be read: lines still waiting for their `F` are handed out as partial.
    fn finish(&mut self) {
        let mut left: Vec<LogRecord> = self
            .assembling
            .iter_mut()
            .filter_map(Option::take)
            .map(|mut record| {
                record.partial = true;
                record
            })
            .collect();
        left.sort_by_key(|record| record.timestamp);
        for record in left {
            self.push(record);
        }
        self.done = true;
    }
}

impl Iterator for LogReader {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            match self.poll() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
            if (self.stop)() {
                // The writer is done: read what it wrote last, then end.
                if let Err(err) = self.poll().and_then(|_| self.poll()) {
                    self.done = true;
                    return Some(Err(err));
                }
                self.finish();
                continue;
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

fn open_followed(path: &Path) -> Result<Followed> {
    let open_err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    Ok(Followed {
        file,
        identity: (meta.dev(), meta.ino()),
        partial_line: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::logs::{CriLogWriter, LogOptions, MAX_LINE_SIZE, Stream};

    fn messages(reader: LogReader) -> Vec<String> {
        reader
            .map(|r| r.unwrap().text().into_owned())
            .collect::<Vec<_>>()
    }

    fn write_lines(writer: &mut CriLogWriter, range: std::ops::Range<usize>) {
        for i in range {
            writer
                .write(Stream::Stdout, format!("line-{i}\n").as_bytes())
                .unwrap();
        }
    }

    fn lines(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("line-{i}")).collect()
    }

    /// Rotation every 3 `line-N` records.
    fn small_files(max_files: usize) -> LogOptions {
        LogOptions {
            max_size_bytes: 3 * "2026-11-22T23:00:00.123456789Z stdout F line-0\n".len() as u64,
            max_files,
        }
    }

    #[test]
    fn joins_partial_records_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, LogOptions::default()).unwrap();
        let long = "x".repeat(2 * MAX_LINE_SIZE + 5);
        writer.write(Stream::Stdout, long.as_bytes()).unwrap();
        writer.write(Stream::Stderr, b"error line\n").unwrap();
        writer.write(Stream::Stdout, b"\n").unwrap();
        writer.write(Stream::Stdout, b"\xff binary\n").unwrap();

        let records: Vec<LogRecord> = read_logs(&path, ReadOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 3);
        assert_eq!(
            (records[0].stream, records[0].text()),
            (Stream::Stderr, "error line".into())
        );
        assert_eq!(records[1].stream, Stream::Stdout);
        assert_eq!(records[1].message, long.as_bytes(), "P, P, F joined");
        assert!(!records[1].partial);
        assert_eq!(records[2].message, b"\xff binary");
    }

    #[test]
    fn unfinished_line_at_the_end_is_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, LogOptions::default()).unwrap();
        writer.write(Stream::Stdout, b"done\nprompt> ").unwrap();
        writer.flush_partial().unwrap();
        let records: Vec<LogRecord> = read_logs(&path, ReadOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 2);
        assert!(!records[0].partial);
        assert!(records[1].partial);
        assert_eq!(records[1].message, b"prompt> ");
        let mut out = Vec::new();
        read_logs(&path, ReadOptions::default())
            .unwrap()
            .copy_to(&mut out)
            .unwrap();
        assert_eq!(out, b"done\nprompt> ");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, LogOptions::default()).unwrap();
        write_lines(&mut writer, 0..10);
        let tail = |n| ReadOptions {
            tail: Some(n),
            ..ReadOptions::default()
        };
        assert_eq!(messages(read_logs(&path, tail(3)).unwrap()), lines(7..10));
        assert_eq!(messages(read_logs(&path, tail(0)).unwrap()), lines(0..0));
        assert_eq!(messages(read_logs(&path, tail(100)).unwrap()), lines(0..10));
    }

    #[test]
    fn reads_and_tails_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, small_files(3)).unwrap();
        write_lines(&mut writer, 0..10);
        // Files: .2 = 3..5, .1 = 6..8, current = 9.
        let all = ReadOptions {
            include_rotated: true,
            ..ReadOptions::default()
        };
        assert_eq!(messages(read_logs(&path, all).unwrap()), lines(3..10));
        let tail = ReadOptions {
            tail: Some(5),
            ..all
        };
        assert_eq!(messages(read_logs(&path, tail).unwrap()), lines(5..10));
        assert_eq!(
            messages(read_logs(&path, ReadOptions::default()).unwrap()),
            lines(9..10),
            "without rotated files only the current one"
        );
    }

    #[test]
    fn skips_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(
            &path,
            "garbage\n\
             2026-11-22T23:00:00Z stdout F one\n\
             \n\
             2026-11-22T23:00:00Z stdin F nope\n\
             2026-13-45T23:00:00Z stdout F bad date\n\
             2026-11-22T23:00:01Z stderr F two\n\
             2026-11-22T23:00:02Z stdout F torn-without-newline",
        )
        .unwrap();
        assert_eq!(
            messages(read_logs(&path, ReadOptions::default()).unwrap()),
            vec!["one", "two"]
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let err = read_logs(&path, ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, LogError::Open { path: p, .. } if *p == path),
            "{err}"
        );
    }

    #[test]
    fn shows_timestamps_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(&path, "2026-11-22T23:00:00.5Z stdout F hi\n").unwrap();
        let options = ReadOptions {
            timestamps: true,
            ..ReadOptions::default()
        };
        let mut out = Vec::new();
        read_logs(&path, options)
            .unwrap()
            .copy_to(&mut out)
            .unwrap();
        assert_eq!(out, b"2026-11-22T23:00:00.500000000Z hi\n");
    }

    /// Follow a writer in another thread through several rotations (some faster than the
    /// reader polls) until the writer says it is done.
    #[test]
    fn follow_sees_appended_lines_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, small_files(20)).unwrap();
        write_lines(&mut writer, 0..2);

        let finished = Arc::new(AtomicBool::new(false));
        let options = ReadOptions {
            follow: true,
            tail: Some(1),
            ..ReadOptions::default()
        };
        let stop = Arc::clone(&finished);
        let reader = read_logs(&path, options)
            .unwrap()
            .stop_when(move || stop.load(Ordering::SeqCst));
        let follower = std::thread::spawn(move || messages(reader));

        let producer = std::thread::spawn(move || {
            for burst in 0..8 {
                let start = 2 + burst * 5;
                write_lines(&mut writer, start..start + 5);
                // Alternate slow and fast bursts: some rotations land between polls.
                let pause = if burst % 2 == 0 { 120 } else { 5 };
                std::thread::sleep(Duration::from_millis(pause));
            }
            writer.write(Stream::Stderr, b"last words").unwrap();
            writer.flush_partial().unwrap();
        });
        producer.join().unwrap();
        finished.store(true, Ordering::SeqCst);

        let mut expected = lines(1..42);
        expected.push("last words".to_owned());
        assert_eq!(follower.join().unwrap(), expected);
        assert!(rotated_path(&path, 5).exists(), "the test did rotate");
    }

    #[test]
    fn follow_catches_up_after_several_rotations_between_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, small_files(5)).unwrap();
        write_lines(&mut writer, 0..2);
        let options = ReadOptions {
            follow: true,
            ..ReadOptions::default()
        };
        let finished = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&finished);
        let reader = read_logs(&path, options)
            .unwrap()
            .stop_when(move || stop.load(Ordering::SeqCst));
        // Four rotations before the reader looks again: its file is now `.4`.
        write_lines(&mut writer, 2..14);
        finished.store(true, Ordering::SeqCst);
        assert_eq!(messages(reader), lines(0..14));
    }

    #[test]
    fn follow_waits_for_the_rest_of_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut writer = CriLogWriter::open(&path, LogOptions::default()).unwrap();
        let long = "y".repeat(MAX_LINE_SIZE + 1);
        writer.write(Stream::Stdout, long.as_bytes()).unwrap();

        let finished = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&finished);
        let options = ReadOptions {
            follow: true,
            ..ReadOptions::default()
        };
        let mut reader = read_logs(&path, options)
            .unwrap()
            .stop_when(move || stop.load(Ordering::SeqCst));
        let producer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            writer.write(Stream::Stdout, b"z\n").unwrap();
        });
        let record = reader.next().unwrap().unwrap();
        assert_eq!(record.message, format!("{long}z").as_bytes());
        assert!(!record.partial);
        producer.join().unwrap();
        finished.store(true, Ordering::SeqCst);
        assert!(reader.next().is_none());
    }
}
