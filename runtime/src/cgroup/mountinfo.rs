//! Parser for `/proc/<pid>/mountinfo` (proc(5)):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//!
//! Field 7 is zero or more optional fields terminated by the `-` separator (8). Paths are escaped
//! with octal sequences (`\040` for a space).

use std::path::PathBuf;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    /// `major:minor` of the device.
    pub device: String,
    /// The directory of the filesystem that forms the root of this mount (for a cgroup mount:
    /// the cgroup it exposes).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// Optional fields such as `shared:4` or `master:1`.
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options; for cgroup v1 these name the controllers (`rw,cpu,cpuacct`).
    pub super_options: String,
}

/// Parse a whole mountinfo file. Lines that do not have the documented shape are skipped with a
/// warning: one odd line must not hide the cgroup mounts.
pub fn parse(content: &str) -> Vec<MountInfo> {
    content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let parsed = parse_line(line);
            if parsed.is_none() {
                tracing::warn!(line, "skipping malformed mountinfo line");
            }
            parsed
        })
        .collect()
}

/// Parse one mountinfo line.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let mut fields = line.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let device = fields.next()?.to_owned();
    let root = PathBuf::from(unescape(fields.next()?));
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let mount_options = fields.next()?.to_owned();
    let mut optional_fields = Vec::new();
    loop {
        match fields.next()? {
            "-" => break,
            field => optional_fields.push(field.to_owned()),
        }
    }
    let fs_type = fields.next()?.to_owned();
    let source = unescape(fields.next()?);
    let super_options = fields.next().unwrap_or_default().to_owned();
    Some(MountInfo {
        mount_id,
        parent_id,
        device,
        root,
        mount_point,
        mount_options,
        optional_fields,
        fs_type,
        source,
        super_options,
    })
}

/// Undo the kernel's octal escaping (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_optional_fields_and_super_options() {
        let mount = parse_line(
            "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,relatime shared:14 master:2 - cgroup cgroup rw,cpu,cpuacct",
        )
        .expect("valid line");
        assert_eq!(mount.mount_id, 30);
        assert_eq!(mount.parent_id, 25);
        assert_eq!(mount.device, "0:27");
        assert_eq!(mount.root, PathBuf::from("/"));
        assert_eq!(
            mount.mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(mount.mount_options, "rw,nosuid,relatime");
        assert_eq!(mount.optional_fields, vec!["shared:14", "master:2"]);
        assert_eq!(mount.fs_type, "cgroup");
        assert_eq!(mount.source, "cgroup");
        assert_eq!(mount.super_options, "rw,cpu,cpuacct");
    }

    #[test]
    fn parses_line_without_optional_fields() {
        let mount =
            parse_line("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory")
                .expect("valid line");
        assert!(mount.optional_fields.is_empty());
        assert_eq!(mount.super_options, "rw,memory");
    }

    #[test]
    fn unescapes_octal_sequences() {
        let mount = parse_line("45 26 0:40 /a\\134b /mnt/my\\040disk rw - ext4 /dev/sdb1 rw")
            .expect("valid line");
        assert_eq!(mount.mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(mount.root, PathBuf::from("/a\\b"));
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn skips_malformed_lines() {
        let mounts = parse(
            "garbage\n\n31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n1 2 3 4 5 6 no-separator\n",
        );
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].fs_type, "tmpfs");
    }

    #[test]
    fn parses_every_line_of_this_hosts_format() {
        let content = include_str!("testdata/mountinfo-hybrid");
        let mounts = parse(content);
        assert_eq!(mounts.len(), content.lines().count());
        assert!(mounts.iter().any(|m| m.fs_type == "cgroup2"));
    }
}
