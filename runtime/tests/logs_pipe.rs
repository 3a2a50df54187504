//! The logs module end to end, the way the shim and `berth logs -f` use it: a real process
//! writes to stdout and stderr pipes, a shim-like thread polls both pipes and feeds a
//! [`CriLogWriter`] (rotating a small file), and a follower reads the records until the shim is
//! done.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_runtime::logs::{self, CriLogWriter, LogOptions, ReadOptions, Stream};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

#[test]
fn logs_from_a_real_process_through_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.log");
    let options = LogOptions {
        max_size_bytes: 1024,
        max_files: 20,
    };
    let mut writer = CriLogWriter::open(&path, options).unwrap();

    let mut child = Command::new("/bin/busybox")
        .args([
            "sh",
            "-c",
            "i=0; while [ $i -lt 40 ]; do echo out $i; echo err $i >&2; i=$((i+1)); \
             [ $((i % 10)) = 0 ] && sleep 0.05; done; printf 'no newline'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox sh");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();

    let shim_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&shim_done);
    // The shim: single-threaded, a fixed buffer, poll(2) on both pipes until both hit EOF.
    let shim = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let mut streams = Vec::new();
            let mut pollfds = Vec::new();
            if out_open {
                streams.push(Stream::Stdout);
                pollfds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
            }
            if err_open {
                streams.push(Stream::Stderr);
                pollfds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
            }
            poll(&mut pollfds, PollTimeout::NONE).expect("poll");
            let ready: Vec<Stream> = streams
                .into_iter()
                .zip(&pollfds)
                .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(stream, _)| stream)
                .collect();
            drop(pollfds);
            for stream in ready {
                let n = match stream {
                    Stream::Stdout => stdout.read(&mut buf).unwrap(),
                    Stream::Stderr => stderr.read(&mut buf).unwrap(),
                };
                if n == 0 {
                    match stream {
                        Stream::Stdout => out_open = false,
                        Stream::Stderr => err_open = false,
                    }
                } else {
                    writer.write(stream, &buf[..n]).unwrap();
                }
            }
        }
        writer.flush_partial().unwrap();
        done.store(true, Ordering::SeqCst);
    });

    let follow = ReadOptions {
        follow: true,
        ..ReadOptions::default()
    };
    let records: Vec<logs::LogRecord> = logs::read_logs(&path, follow)
        .unwrap()
        .stop_when(move || shim_done.load(Ordering::SeqCst))
        .map(Result::unwrap)
        .collect();
    shim.join().unwrap();
    assert!(child.wait().unwrap().success());

    let text = |stream| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.stream == stream)
            .map(|r| r.text().into_owned())
            .collect()
    };
    let mut expected_out: Vec<String> = (0..40).map(|i| format!("out {i}")).collect();
    expected_out.push("no newline".to_owned());
    assert_eq!(text(Stream::Stdout), expected_out);
    assert_eq!(
        text(Stream::Stderr),
        (0..40).map(|i| format!("err {i}")).collect::<Vec<_>>()
    );
    let last = records.last().unwrap();
    assert!(last.partial && last.text() == "no newline", "{last:?}");
    assert!(
        logs::rotated_path(&path, 2).exists(),
        "the small file rotated"
    );

    // Reading again afterwards, rotated files included, gives the same lines.
    let again = ReadOptions {
        include_rotated: true,
        ..ReadOptions::default()
    };
    let reread: Vec<logs::LogRecord> = logs::read_logs(&path, again)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(reread, records);
}
