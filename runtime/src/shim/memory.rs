//! Dropping the shim's mappings of code and read-only data it needed only to set up.
//!
//! A shim maps berth's whole binary and the C library; creating the container touches a few
//! megabytes of them, supervising it (poll, read the pipes, write the log) very little. The pages
//! stay in the page cache, shared with every other berth process, but each touched page is
//! also in the shim's page table and counted in its resident set. Once the container runs,
//! the shim unmaps every file-backed mapping that holds no private page of its own: the pages it
//! needs again fault back in from the page cache.

use std::ops::Range;

/// Drop this process's mappings of file-backed pages it never wrote (see the module doc).
/// Mappings with private (copy-on-write) pages are kept whole: dropping those pages would lose
/// what was written to them (relocations, data).
pub(crate) fn release_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for range in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole file-backed mapping of this process with no anonymous
        // page: MADV_DONTNEED only removes its pages from this process's page table, and any
        // later access faults them back in from the file, unchanged.
        unsafe {
            libc::madvise(
                range.start as *mut libc::c_void,
                range.end - range.start,
                libc::MADV_DONTNEED,
            );
        }
    }
    // Give the heap the buffer above back, too.
    // SAFETY: malloc_trim only releases free memory at the top of the heap.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The address ranges of file-backed mappings without anonymous pages or locked memory, from
/// the text of `/proc/PID/smaps`.
fn clean_file_mappings(smaps: &str) -> Vec<Range<usize>> {
    struct Mapping {
        range: Range<usize>,
        file: bool,
        anonymous: Option<u64>,
        locked: bool,
    }
    let mut out = Vec::new();
    let mut current: Option<Mapping> = None;
    let mut finish = |mapping: Option<Mapping>| {
        if let Some(m) = mapping
            && m.file
            && m.anonymous == Some(0)
            && !m.locked
        {
            out.push(m.range);
        }
    };
    for line in smaps.lines() {
        if let Some(range) = header_range(line) {
            finish(current.take());
            let mut fields = line.split_whitespace();
            let inode = fields.nth(4).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            current = Some(Mapping {
                range,
                file: inode != "0" && path.starts_with('/'),
                anonymous: None,
                locked: false,
            });
            continue;
        }
        let Some(mapping) = current.as_mut() else {
            continue;
        };
        if let Some(value) = line.strip_prefix("Anonymous:") {
            mapping.anonymous = value.trim().trim_end_matches("kB").trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("Locked:") {
            mapping.locked |= value.trim().trim_end_matches("kB").trim() != "0";
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            mapping.locked |= flags.split_whitespace().any(|f| f == "lo");
        }
    }
    finish(current);
    out
}

/// `start-end` of a mapping's header line (`7f12…-7f13… r-xp …`).
fn header_range(line: &str) -> Option<Range<usize>> {
    let first = line.split_whitespace().next()?;
    let (start, end) = first.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0454000 r--p 00000000 fe:00 326279                     /usr/bin/berth
Size:               4432 kB
Rss:                 512 kB
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd mr mw me
55d0c2000000-55d0c20b4000 r--p 01805000 fe:00 326279                     /usr/bin/berth
Size:                720 kB
Anonymous:           724 kB
Locked:                0 kB
VmFlags: rd mr mw me ac
55d0c3000000-55d0c3021000 rw-p 00000000 00:00 0                          [heap]
Anonymous:            44 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000010000 r-xp 00000000 fe:00 999                        /usr/lib/libc.so.6
Anonymous:             0 kB
Locked:                4 kB
VmFlags: rd ex mr mw me lo
7f0000020000-7f0000030000 r-xp 00028000 fe:00 999                        /usr/lib/libc.so.6
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd ex mr mw me
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
VmFlags: rd ex mr mw me de
";

    #[test]
    fn only_unwritten_unlocked_file_mappings_are_released() {
        assert_eq!(
            clean_file_mappings(SMAPS),
            vec![
                0x55d0c0000000..0x55d0c0454000,
                0x7f0000020000..0x7f0000030000
            ]
        );
    }

    #[test]
    fn headers_parse() {
        assert_eq!(
            header_range("00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon"),
            Some(0x400000..0x452000)
        );
        assert_eq!(header_range("Rss:                 512 kB"), None);
        assert_eq!(header_range("VmFlags: rd ex mr mw me"), None);
    }

    #[test]
    fn releasing_keeps_the_process_working_and_shrinks_its_file_pages() {
        let rss_file = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap()
        };
        let before = rss_file();
        release_clean_file_pages();
        let after = rss_file();
        // Code runs on (faulting back what it needs) and far fewer file pages stay mapped.
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        let text: String = (0..100).map(|i| i.to_string()).collect();
        assert!(text.starts_with("0123"));
    }
}
