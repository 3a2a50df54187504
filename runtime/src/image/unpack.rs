//! Unpacking one layer tar into its own directory, safely, in overlayfs' native form.
//!
//! Layers are hostile input. Every entry is created with `*at` system calls relative to a
//! directory fd reached from the layer root one component at a time with `O_NOFOLLOW`, so no
//! path in the archive can leave the layer: absolute paths and `..` components are rejected, a
//! symlink (or any non-directory) met as a parent component is an error rather than something
//! to follow, and hardlink targets are resolved the same way inside the layer. Symlink *targets*
//! are stored verbatim; they are never followed here.
//!
//! Each layer becomes a separate overlayfs lowerdir, so OCI whiteouts are converted to the form
//! overlayfs understands (as containerd's overlay applier does): `.wh.NAME` becomes a 0:0
//! character device `NAME`, `.wh..wh..opq` becomes the xattr `trusted.overlay.opaque=y` on its
//! directory, and no `.wh.` file is ever written. Per the image spec a whiteout hides only lower
//! layers, so an entry of the same layer with the whiteout's name is kept.
//!
//! Policy for special files: character and block devices are rejected (a device node in an image
//! would hand its containers raw access to host devices if the device cgroup allowed it), except
//! a 0:0 character device, which is an overlay whiteout already and is kept as one. FIFOs are
//! created. Setuid/setgid/sticky bits, numeric ownership, mtimes and PAX `SCHILY.xattr.*`
//! attributes are preserved; `trusted.overlay.*` attributes from the archive are dropped because
//! they would change how overlayfs reads the layer.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, mkdirat,
    mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use ruzstd::decoding::{FrameDecoder, StreamingDecoder};
use xattr::FileExt as _;

/// Longest path accepted in a layer (Linux `PATH_MAX`).
const MAX_PATH_LEN: usize = 4096;
/// Longest single path component (Linux `NAME_MAX`).
const MAX_NAME_LEN: usize = 255;
const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the layer archive")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: {reason}")]
    Rejected { entry: String, reason: Reason },
    #[error("entry {entry:?}: {op}")]
    Sys {
        entry: String,
        op: &'static str,
        #[source]
        source: Errno,
    },
    #[error("entry {entry:?}: {op}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer has more than {max} entries")]
    TooManyEntries { max: u64 },
}

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("absolute paths are not allowed in a layer")]
    AbsolutePath,
    #[error("`..` path components are not allowed in a layer")]
    ParentComponent,
    #[error(
        "path is longer than {MAX_PATH_LEN} bytes or has a component longer than {MAX_NAME_LEN}"
    )]
    PathTooLong,
    #[error("path component {component:?} is a symlink; writing through a symlink is not allowed")]
    SymlinkInPath { component: String },
    #[error("path component {component:?} exists and is not a directory")]
    NotADirectory { component: String },
    #[error("hardlink target {target:?}: {reason}")]
    LinkTarget { target: String, reason: Box<Reason> },
    #[error("hardlink target {target:?} does not exist earlier in this layer")]
    LinkTargetMissing { target: String },
    #[error("link has an empty target")]
    EmptyLinkName,
    #[error("{kind} device {major}:{minor} is not allowed in an image layer")]
    Device {
        kind: &'static str,
        major: u32,
        minor: u32,
    },
    #[error("unsupported tar entry type {kind}")]
    UnsupportedType { kind: String },
    #[error("the layer root can only be a directory")]
    RootNotDirectory,
    #[error("whiteout names no file")]
    EmptyWhiteout,
    #[error("owner {uid}:{gid} is out of range")]
    OwnerOutOfRange { uid: u64, gid: u64 },
}

/// What an unpack did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
}

/// Compression of a layer blob, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The uncompressed stream of a layer blob (plain tar, gzip with any number of members, or zstd
/// with any number of frames), compression detected from the content as containerd does.
pub fn decompress(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(file);
    let compression = Compression::sniff(reader.fill_buf()?);
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ZstdStream::new(reader)),
    })
}

/// A zstd stream of any number of frames (ruzstd's `StreamingDecoder` decodes one).
struct ZstdStream<R: BufRead> {
    state: ZstdState<R>,
}

enum ZstdState<R: BufRead> {
    Between(R, Box<FrameDecoder>),
    InFrame(StreamingDecoder<R, Box<FrameDecoder>>),
    Done,
}

impl<R: BufRead> ZstdStream<R> {
    fn new(reader: R) -> Self {
        ZstdStream {
            state: ZstdState::Between(reader, Box::new(FrameDecoder::new())),
        }
    }
}

impl<R: BufRead> Read for ZstdStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match std::mem::replace(&mut self.state, ZstdState::Done) {
                ZstdState::Done => return Ok(0),
                ZstdState::InFrame(mut frame) => {
                    let n = frame.read(buf)?;
                    if n > 0 || buf.is_empty() {
                        self.state = ZstdState::InFrame(frame);
                        return Ok(n);
                    }
                    let (reader, decoder) = frame.into_parts();
                    self.state = ZstdState::Between(reader, decoder);
                }
                ZstdState::Between(mut reader, decoder) => {
                    let head = reader.fill_buf()?;
                    if head.is_empty() {
                        return Ok(0);
                    }
                    // Skippable frames: magic 0x184D2A5? then a 32-bit little-endian length.
                    if head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50
                    {
                        let mut header = [0u8; 8];
                        reader.read_exact(&mut header)?;
                        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                        let skipped =
                            io::copy(&mut (&mut reader).take(len.into()), &mut io::sink())?;
                        if skipped != u64::from(len) {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        self.state = ZstdState::Between(reader, decoder);
                        continue;
                    }
                    let frame = StreamingDecoder::new_with_decoder(reader, decoder)
                        .map_err(io::Error::other)?;
                    self.state = ZstdState::InFrame(frame);
                }
            }
        }
    }
}

/// Unpacks the tar stream `reader` into the existing, empty directory `dest` and returns the
/// reader (positioned after the end-of-archive marker, so the caller can hash what follows).
pub fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    max_entries: u64,
) -> Result<(UnpackStats, R), UnpackError> {
    let root = openat(
        nix::fcntl::AT_FDCWD,
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| UnpackError::Sys {
        entry: ".".into(),
        op: "opening the layer root",
        source,
    })?;
    let layer = Layer {
        root,
        root_path: dest.to_owned(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    let mut dirs = Vec::new();
    for entry in archive
        .entries()
        .map_err(|source| UnpackError::Read { source })?
    {
        let mut entry = entry.map_err(|source| UnpackError::Read { source })?;
        stats.entries += 1;
        if stats.entries > max_entries {
            return Err(UnpackError::TooManyEntries { max: max_entries });
        }
        layer.apply(&mut entry, &mut stats, &mut dirs)?;
    }
    // Directory modes and times last, deepest first: creating children changes a directory's
    // mtime, and a read-only mode must not stop its own children from being created.
    for dir in dirs.iter().rev() {
        layer.finish_dir(dir)?;
    }
    Ok((stats, archive.into_inner()))
}

struct Layer {
    root: OwnedFd,
    root_path: PathBuf,
}

/// Metadata of one entry, PAX overrides applied.
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

/// A directory whose mode and mtime are applied after all entries.
struct PendingDir {
    entry: String,
    components: Vec<OsString>,
    mode: u32,
    mtime: TimeSpec,
}

/// Splits an archive path into its components: `.` and empty components dropped, absolute
/// paths, `..` and over-long paths refused.
pub fn components(path: &[u8]) -> Result<Vec<&OsStr>, Reason> {
    if path.len() > MAX_PATH_LEN {
        return Err(Reason::PathTooLong);
    }
    if path.starts_with(b"/") {
        return Err(Reason::AbsolutePath);
    }
    let mut out = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Reason::ParentComponent),
            _ if part.len() > MAX_NAME_LEN => return Err(Reason::PathTooLong),
            _ => out.push(OsStr::from_bytes(part)),
        }
    }
    Ok(out)
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn is_dir(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

fn is_symlink(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Layer {
    /// Opens the directory at `components` beneath the root without following any symlink,
    /// creating missing directories (mode 0755, root-owned, as tar does) when `create`.
    fn open_dir(
        &self,
        entry: &str,
        components: &[&OsStr],
        create: bool,
    ) -> Result<OwnedFd, UnpackError> {
        let sys = |op, source| UnpackError::Sys {
            entry: entry.to_owned(),
            op,
            source,
        };
        let mut dir = self.root.try_clone().map_err(|source| UnpackError::Io {
            entry: entry.to_owned(),
            op: "duplicating the layer root fd",
            source,
        })?;
        for component in components {
            dir = match openat(&dir, *component, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&dir, *component, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(source) => return Err(sys("creating a parent directory", source)),
                    }
                    let fd = openat(&dir, *component, DIR_FLAGS, Mode::empty())
                        .map_err(|source| sys("opening a parent directory", source))?;
                    fchmod(&fd, Mode::from_bits_truncate(0o755))
                        .map_err(|source| sys("setting a parent directory's mode", source))?;
                    fd
                }
                Err(Errno::ENOENT) => {
                    return Err(UnpackError::Sys {
                        entry: entry.to_owned(),
                        op: "opening a directory",
                        source: Errno::ENOENT,
                    });
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let symlink = fstatat(&dir, *component, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| is_symlink(st.st_mode));
                    let component = component.to_string_lossy().into_owned();
                    let reason = if symlink {
                        Reason::SymlinkInPath { component }
                    } else {
                        Reason::NotADirectory { component }
                    };
                    return Err(UnpackError::Rejected {
                        entry: entry.to_owned(),
                        reason,
                    });
                }
                Err(source) => return Err(sys("opening a parent directory", source)),
            };
        }
        Ok(dir)
    }

    /// Makes room for a new entry `name` in `parent`: nothing to do if absent; an existing
    /// directory is kept when `keep_dir` (directories merge) and removed otherwise; anything else
    /// is unlinked. Returns whether a directory was kept.
    fn make_room(
        &self,
        entry: &str,
        parent: &OwnedFd,
        components: &[&OsStr],
        keep_dir: bool,
    ) -> Result<bool, UnpackError> {
        let sys = |op, source| UnpackError::Sys {
            entry: entry.to_owned(),
            op,
            source,
        };
        let name = components[components.len() - 1];
        let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(source) => return Err(sys("inspecting the existing path", source)),
        };
        if is_dir(st.st_mode) {
            if keep_dir {
                return Ok(true);
            }
            // The parent chain has no symlinks (checked on the way down) and only this unpack
            // writes to the layer; remove_dir_all does not follow symlinks inside the tree.
            let path: PathBuf = components
                .iter()
                .fold(self.root_path.clone(), |p, c| p.join(c));
            std::fs::remove_dir_all(&path).map_err(|source| UnpackError::Io {
                entry: entry.to_owned(),
                op: "replacing an existing directory",
                source,
            })?;
        } else {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|source| sys("replacing an existing file", source))?;
        }
        Ok(false)
    }

    fn apply<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        stats: &mut UnpackStats,
        dirs: &mut Vec<PendingDir>,
    ) -> Result<(), UnpackError> {
        let path_bytes = entry.path_bytes().into_owned();
        let name = lossy(&path_bytes);
        let reject = |reason| UnpackError::Rejected {
            entry: name.clone(),
            reason,
        };
        let comps = components(&path_bytes).map_err(reject)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let meta = self.meta(entry, &name)?;

        let Some((last, parents)) = comps.split_last() else {
            // The layer root itself (`./`): only its metadata can be set.
            if !kind.is_dir() {
                return Err(reject(Reason::RootNotDirectory));
            }
            self.set_owner_and_xattrs(&name, &self.root, &meta, true)?;
            dirs.push(PendingDir {
                entry: name,
                components: Vec::new(),
                mode: meta.mode,
                mtime: meta.mtime,
            });
            return Ok(());
        };
        let last_str = last.to_string_lossy();

        // Whiteouts, converted to overlayfs' form.
        if last_str == OPAQUE_MARKER {
            let dir = self.open_dir(&name, parents, true)?;
            File::from(dir)
                .set_xattr(OPAQUE_XATTR, b"y")
                .map_err(|source| UnpackError::Io {
                    entry: name.clone(),
                    op: "marking the directory opaque (trusted.overlay.opaque needs CAP_SYS_ADMIN)",
                    source,
                })?;
            stats.opaque_dirs += 1;
            return Ok(());
        }
        if last_str.starts_with(WHITEOUT_META_PREFIX) {
            tracing::debug!(entry = %name, "skipping AUFS whiteout metadata");
            return Ok(());
        }
        if let Some(hidden) = last_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(reject(Reason::EmptyWhiteout));
            }
            let hidden = OsStr::from_bytes(&last.as_bytes()[WHITEOUT_PREFIX.len()..]);
            let parent = self.open_dir(&name, parents, true)?;
            match fstatat(&parent, hidden, AtFlags::AT_SYMLINK_NOFOLLOW) {
                // Same-layer files are not hidden by a whiteout (image spec).
                Ok(_) => return Ok(()),
                Err(Errno::ENOENT) => {}
                Err(source) => {
                    return Err(UnpackError::Sys {
                        entry: name,
                        op: "inspecting the whiteout target",
                        source,
                    });
                }
            }
            self.make_whiteout(&name, &parent, hidden)?;
            stats.whiteouts += 1;
            return Ok(());
        }

        let parent = self.open_dir(&name, parents, true)?;
        let sys = |op, source| UnpackError::Sys {
            entry: name.clone(),
            op,
            source,
        };
        match kind {
            tar::EntryType::Directory => {
                let kept = self.make_room(&name, &parent, &comps, true)?;
                if !kept {
                    mkdirat(&parent, *last, Mode::from_bits_truncate(0o700))
                        .map_err(|source| sys("creating the directory", source))?;
                }
                let dir = openat(&parent, *last, DIR_FLAGS, Mode::empty())
                    .map_err(|source| sys("opening the directory", source))?;
                self.set_owner_and_xattrs(&name, &dir, &meta, true)?;
                dirs.push(PendingDir {
                    entry: name.clone(),
                    components: comps.iter().map(|c| c.to_os_string()).collect(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.make_room(&name, &parent, &comps, false)?;
                let fd = openat(
                    &parent,
                    *last,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|source| sys("creating the file", source))?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let copied = io::copy(entry, &mut file).map_err(|source| UnpackError::Io {
                    entry: name.clone(),
                    op: "extracting the file's data",
                    source,
                })?;
                if kind != tar::EntryType::GNUSparse && copied != expected {
                    return Err(UnpackError::Io {
                        entry: name.clone(),
                        op: "extracting the file's data",
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("archive ends after {copied} of {expected} bytes"),
                        ),
                    });
                }
                let fd = OwnedFd::from(file);
                self.set_owner_and_xattrs(&name, &fd, &meta, false)?;
                futimens(&fd, &meta.mtime, &meta.mtime)
                    .map_err(|source| sys("setting mtime", source))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(Cow::into_owned)
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(reject(Reason::EmptyLinkName));
                }
                self.make_room(&name, &parent, &comps, false)?;
                symlinkat(OsStr::from_bytes(&target), &parent, *last)
                    .map_err(|source| sys("creating the symlink", source))?;
                fchownat(
                    &parent,
                    *last,
                    Some(meta.uid),
                    Some(meta.gid),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|source| sys("setting the symlink's owner", source))?;
                if !meta.xattrs.is_empty() {
                    tracing::warn!(entry = %name, "ignoring extended attributes on a symlink");
                }
                utimensat(
                    &parent,
                    *last,
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|source| sys("setting the symlink's mtime", source))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(Cow::into_owned)
                    .unwrap_or_default();
                self.hardlink(&name, &parent, &comps, &target)?;
            }
            tar::EntryType::Fifo => {
                self.make_room(&name, &parent, &comps, false)?;
                mknodat(
                    &parent,
                    *last,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(|source| sys("creating the fifo", source))?;
                fchownat(
                    &parent,
                    *last,
                    Some(meta.uid),
                    Some(meta.gid),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|source| sys("setting the fifo's owner", source))?;
                // The name was just created as a fifo by us: following it cannot leave the layer.
                fchmodat(
                    &parent,
                    *last,
                    Mode::from_bits_truncate(meta.mode),
                    FchmodatFlags::NoFollowSymlink,
                )
                .or_else(|err| match err {
                    Errno::EOPNOTSUPP => fchmodat(
                        &parent,
                        *last,
                        Mode::from_bits_truncate(meta.mode),
                        FchmodatFlags::FollowSymlink,
                    ),
                    other => Err(other),
                })
                .map_err(|source| sys("setting the fifo's mode", source))?;
                utimensat(
                    &parent,
                    *last,
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|source| sys("setting the fifo's mtime", source))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                if kind == tar::EntryType::Char && major == 0 && minor == 0 {
                    // Already an overlay whiteout.
                    self.make_room(&name, &parent, &comps, false)?;
                    self.make_whiteout(&name, &parent, last)?;
                    stats.whiteouts += 1;
                } else {
                    let kind = if kind == tar::EntryType::Char {
                        "character"
                    } else {
                        "block"
                    };
                    return Err(reject(Reason::Device { kind, major, minor }));
                }
            }
            other => {
                return Err(reject(Reason::UnsupportedType {
                    kind: format!("{other:?}"),
                }));
            }
        }
        Ok(())
    }

    fn make_whiteout(
        &self,
        entry: &str,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> Result<(), UnpackError> {
        let sys = |op, source| UnpackError::Sys {
            entry: entry.to_owned(),
            op,
            source,
        };
        mknodat(parent, name, SFlag::S_IFCHR, Mode::empty(), 0)
            .map_err(|source| sys("creating the whiteout device (needs CAP_MKNOD)", source))?;
        fchownat(
            parent,
            name,
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|source| sys("setting the whiteout's owner", source))
    }

    fn hardlink(
        &self,
        entry: &str,
        parent: &OwnedFd,
        comps: &[&OsStr],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let target_name = lossy(target);
        let reject = |reason| UnpackError::Rejected {
            entry: entry.to_owned(),
            reason,
        };
        if target.is_empty() {
            return Err(reject(Reason::EmptyLinkName));
        }
        let target_comps = components(target).map_err(|reason| {
            reject(Reason::LinkTarget {
                target: target_name.clone(),
                reason: Box::new(reason),
            })
        })?;
        let Some((target_last, target_parents)) = target_comps.split_last() else {
            return Err(reject(Reason::LinkTargetMissing {
                target: target_name,
            }));
        };
        if target_comps == comps {
            // A link to itself: the file is already there.
            return Ok(());
        }
        let target_dir = match self.open_dir(entry, target_parents, false) {
            Ok(fd) => fd,
            Err(UnpackError::Rejected { reason, .. }) => {
                return Err(reject(Reason::LinkTarget {
                    target: target_name,
                    reason: Box::new(reason),
                }));
            }
            Err(UnpackError::Sys {
                source: Errno::ENOENT,
                ..
            }) => {
                return Err(reject(Reason::LinkTargetMissing {
                    target: target_name,
                }));
            }
            Err(other) => return Err(other),
        };
        match fstatat(&target_dir, *target_last, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(st.st_mode) => {
                return Err(reject(Reason::LinkTarget {
                    target: target_name,
                    reason: Box::new(Reason::NotADirectory {
                        component: "(hardlink to a directory)".into(),
                    }),
                }));
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                return Err(reject(Reason::LinkTargetMissing {
                    target: target_name,
                }));
            }
            Err(source) => {
                return Err(UnpackError::Sys {
                    entry: entry.to_owned(),
                    op: "inspecting the hardlink target",
                    source,
                });
            }
        }
        self.make_room(entry, parent, comps, false)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        linkat(
            &target_dir,
            *target_last,
            parent,
            comps[comps.len() - 1],
            AtFlags::empty(),
        )
        .map_err(|source| UnpackError::Sys {
            entry: entry.to_owned(),
            op: "creating the hardlink",
            source,
        })
    }

    /// Owner, then (for files) mode, then xattrs: chown clears setuid bits and file
    /// capabilities, so those come after it. Directory modes are applied at the end.
    fn set_owner_and_xattrs(
        &self,
        entry: &str,
        fd: &OwnedFd,
        meta: &Meta,
        is_directory: bool,
    ) -> Result<(), UnpackError> {
        let sys = |op, source| UnpackError::Sys {
            entry: entry.to_owned(),
            op,
            source,
        };
        fchown(fd, Some(meta.uid), Some(meta.gid))
            .map_err(|source| sys("setting the owner", source))?;
        if !is_directory {
            fchmod(fd, Mode::from_bits_truncate(meta.mode))
                .map_err(|source| sys("setting the mode", source))?;
        }
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let file = File::from(fd.try_clone().map_err(|source| UnpackError::Io {
            entry: entry.to_owned(),
            op: "duplicating an fd",
            source,
        })?);
        for (key, value) in &meta.xattrs {
            if key.as_bytes().starts_with(b"trusted.overlay.") {
                tracing::warn!(entry = %entry, xattr = %key.to_string_lossy(), "dropping overlayfs-private xattr from the layer");
                continue;
            }
            match file.set_xattr(key, value) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::warn!(entry = %entry, xattr = %key.to_string_lossy(), ?err, "filesystem does not support this xattr; skipped");
                }
                Err(source) => {
                    return Err(UnpackError::Io {
                        entry: entry.to_owned(),
                        op: "setting an extended attribute",
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn finish_dir(&self, dir: &PendingDir) -> Result<(), UnpackError> {
        let comps: Vec<&OsStr> = dir.components.iter().map(OsString::as_os_str).collect();
        let fd = match self.open_dir(&dir.entry, &comps, false) {
            Ok(fd) => fd,
            // A later entry replaced the directory (or a parent) with something else.
            Err(
                UnpackError::Rejected { .. }
                | UnpackError::Sys {
                    source: Errno::ENOENT,
                    ..
                },
            ) => return Ok(()),
            Err(err) => return Err(err),
        };
        let sys = |op, source| UnpackError::Sys {
            entry: dir.entry.clone(),
            op,
            source,
        };
        fchmod(&fd, Mode::from_bits_truncate(dir.mode))
            .map_err(|source| sys("setting the mode", source))?;
        futimens(&fd, &dir.mtime, &dir.mtime).map_err(|source| sys("setting mtime", source))
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<Meta, UnpackError> {
        let io_err = |op, source| UnpackError::Io {
            entry: name.to_owned(),
            op,
            source,
        };
        let header = entry.header();
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode)
            .map_err(|e| io_err("reading the mode", e))? as u32
            & 0o7777;
        let mut uid = numeric(header.uid(), &old.uid).map_err(|e| io_err("reading the uid", e))?;
        let mut gid = numeric(header.gid(), &old.gid).map_err(|e| io_err("reading the gid", e))?;
        let mtime_secs =
            numeric(header.mtime(), &old.mtime).map_err(|e| io_err("reading the mtime", e))?;
        let mut mtime = TimeSpec::new(i64::try_from(mtime_secs).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| io_err("reading PAX headers", e))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| io_err("reading PAX headers", e))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                match key {
                    b"uid" => uid = parse_u64(value).unwrap_or(uid),
                    b"gid" => gid = parse_u64(value).unwrap_or(gid),
                    b"mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                    _ => {
                        if let Some(attr) = key.strip_prefix(PAX_XATTR_PREFIX.as_bytes()) {
                            xattrs.push((OsStr::from_bytes(attr).to_os_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let (Ok(u), Ok(g)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(UnpackError::Rejected {
                entry: name.to_owned(),
                reason: Reason::OwnerOutOfRange { uid, gid },
            });
        };
        Ok(Meta {
            mode,
            uid: Uid::from_raw(u),
            gid: Gid::from_raw(g),
            mtime,
            xattrs,
        })
    }
}

/// A numeric header field; an empty one (all NUL or spaces) reads as 0, as Go's archive/tar
/// (which wrote most image layers) reads it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

fn parse_u64(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// PAX times are decimal seconds with an optional fraction (`1700000000.123456789`).
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(TimeSpec::new(secs, if secs < 0 { -nanos } else { nanos }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn components_str(p: &str) -> Result<Vec<String>, Reason> {
        components(p.as_bytes())
            .map(|v| v.iter().map(|c| c.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn path_components_are_normalised_and_unsafe_paths_refused() {
        assert_eq!(components_str("./a/b/").unwrap(), ["a", "b"]);
        assert_eq!(components_str("a//./b").unwrap(), ["a", "b"]);
        assert!(components_str("./").unwrap().is_empty());
        assert_eq!(components_str("/etc/passwd"), Err(Reason::AbsolutePath));
        assert_eq!(components_str("../../etc/x"), Err(Reason::ParentComponent));
        assert_eq!(components_str("a/../../b"), Err(Reason::ParentComponent));
        assert_eq!(components_str(&"a/".repeat(3000)), Err(Reason::PathTooLong));
        assert_eq!(components_str(&"x".repeat(256)), Err(Reason::PathTooLong));
    }

    #[test]
    fn compression_is_sniffed_from_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/passwd\0"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(TimeSpec::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(parse_pax_time(b"x"), None);
    }

    /// A tar entry with an arbitrary (possibly hostile) name, bypassing the tar crate's checks.
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    fn unpack_entries(
        build: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    ) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let result = unpack(&bytes[..], dir.path(), 1000).map(|(stats, _)| stats);
        (dir, result)
    }

    fn rejected(result: Result<UnpackStats, UnpackError>) -> (String, Reason) {
        match result {
            Err(UnpackError::Rejected { entry, reason }) => (entry, reason),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn traversal_and_absolute_paths_are_rejected() {
        let (_d, r) =
            unpack_entries(|b| raw_entry(b, "../../etc/x", tar::EntryType::Regular, None, b"x"));
        assert_eq!(rejected(r), ("../../etc/x".into(), Reason::ParentComponent));
        let (_d, r) =
            unpack_entries(|b| raw_entry(b, "/etc/x", tar::EntryType::Regular, None, b"x"));
        assert_eq!(rejected(r), ("/etc/x".into(), Reason::AbsolutePath));
    }

    #[test]
    fn writing_through_a_symlink_is_rejected() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_owned();
        let (dir, r) = unpack_entries(|b| {
            raw_entry(b, "a", tar::EntryType::Symlink, Some(&target), b"");
            raw_entry(b, "a/passwd", tar::EntryType::Regular, None, b"owned");
        });
        assert_eq!(
            rejected(r),
            (
                "a/passwd".into(),
                Reason::SymlinkInPath {
                    component: "a".into()
                }
            )
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // The symlink itself is stored verbatim.
        assert_eq!(
            std::fs::read_link(dir.path().join("a")).unwrap(),
            outside.path()
        );
    }

    #[test]
    fn hardlinks_must_stay_in_the_layer() {
        let (_d, r) =
            unpack_entries(|b| raw_entry(b, "x", tar::EntryType::Link, Some("/etc/passwd"), b""));
        let (_, reason) = rejected(r);
        assert!(
            matches!(reason, Reason::LinkTarget { ref reason, .. } if **reason == Reason::AbsolutePath),
            "{reason}"
        );
        let (_d, r) = unpack_entries(|b| {
            raw_entry(
                b,
                "x",
                tar::EntryType::Link,
                Some("../../../../etc/passwd"),
                b"",
            )
        });
        assert!(matches!(rejected(r).1, Reason::LinkTarget { .. }));
        let (_d, r) = unpack_entries(|b| {
            raw_entry(b, "l", tar::EntryType::Symlink, Some("/etc"), b"");
            raw_entry(b, "x", tar::EntryType::Link, Some("l/passwd"), b"");
        });
        assert!(
            matches!(rejected(r).1, Reason::LinkTarget { ref reason, .. } if matches!(**reason, Reason::SymlinkInPath { .. }))
        );
        let (_d, r) =
            unpack_entries(|b| raw_entry(b, "x", tar::EntryType::Link, Some("missing"), b""));
        assert!(matches!(rejected(r).1, Reason::LinkTargetMissing { .. }));
    }

    #[test]
    fn hardlinks_within_the_layer_share_the_inode() {
        let (dir, r) = unpack_entries(|b| {
            raw_entry(b, "bin/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "bin/a", tar::EntryType::Regular, None, b"data");
            raw_entry(b, "bin/b", tar::EntryType::Link, Some("bin/a"), b"");
        });
        r.unwrap();
        let a = std::fs::metadata(dir.path().join("bin/a")).unwrap();
        let b = std::fs::metadata(dir.path().join("bin/b")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 2);
    }

    #[test]
    fn devices_are_rejected_but_fifos_created() {
        let (_d, r) = unpack_entries(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_path("dev/null").unwrap();
            header.set_entry_type(tar::EntryType::Char);
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
            header.set_size(0);
            header.set_cksum();
            b.append(&header, &[][..]).unwrap();
        });
        assert_eq!(
            rejected(r).1,
            Reason::Device {
                kind: "character",
                major: 1,
                minor: 3
            }
        );
        let (dir, r) =
            unpack_entries(|b| raw_entry(b, "run/fifo", tar::EntryType::Fifo, None, b""));
        r.unwrap();
        let meta = std::fs::symlink_metadata(dir.path().join("run/fifo")).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    }

    /// Root only: mknod and trusted.* xattrs need CAP_MKNOD / CAP_SYS_ADMIN (CI runs as root).
    #[test]
    fn whiteouts_become_overlay_devices_and_opaque_xattrs() {
        let (dir, r) = unpack_entries(|b| {
            raw_entry(b, "etc/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "etc/.wh.passwd", tar::EntryType::Regular, None, b"");
            raw_entry(b, "var/.wh..wh..opq", tar::EntryType::Regular, None, b"");
            raw_entry(b, "keep", tar::EntryType::Regular, None, b"k");
            raw_entry(b, ".wh.keep", tar::EntryType::Regular, None, b"");
            raw_entry(b, ".wh..wh.plnk", tar::EntryType::Regular, None, b"");
        });
        let stats = r.unwrap();
        assert_eq!(stats.whiteouts, 1);
        assert_eq!(stats.opaque_dirs, 1);
        let wh = std::fs::symlink_metadata(dir.path().join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 0, 0));
        assert_eq!(
            xattr::get(dir.path().join("var"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        // Same-layer file survives its whiteout.
        assert_eq!(std::fs::read(dir.path().join("keep")).unwrap(), b"k");
        let mut names = Vec::new();
        for e in walk(dir.path()) {
            names.push(e.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert!(names.iter().all(|n| !n.starts_with(".wh.")), "{names:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn metadata_is_preserved() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o1777);
        h.set_mtime(1_500_000_000);
        h.set_size(0);
        builder.append_data(&mut h, "tmp/", &[][..]).unwrap();
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.user.berth", &b"v"[..]),
                ("mtime", &b"1600000000.25"[..]),
            ])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1);
        h.set_size(2);
        builder.append_data(&mut h, "bin/su", &b"#!"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(1_400_000_000);
        h.set_size(0);
        builder.append_link(&mut h, "bin/sh", "su").unwrap();
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut trailing = Vec::new();
        let (_, mut rest) = unpack(&bytes[..], dir.path(), 100).unwrap();
        rest.read_to_end(&mut trailing).unwrap();

        let tmp = std::fs::symlink_metadata(dir.path().join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        assert_eq!(tmp.mtime(), 1_500_000_000);
        let su = std::fs::symlink_metadata(dir.path().join("bin/su")).unwrap();
        assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
        assert_eq!((su.uid(), su.gid()), (1234, 5678));
        assert_eq!((su.mtime(), su.mtime_nsec()), (1_600_000_000, 250_000_000));
        assert_eq!(
            xattr::get(dir.path().join("bin/su"), "user.berth")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
        let sh = std::fs::symlink_metadata(dir.path().join("bin/sh")).unwrap();
        assert!(sh.file_type().is_symlink());
        assert_eq!((sh.uid(), sh.gid(), sh.mtime()), (7, 8, 1_400_000_000));
        // Implicit parent directory.
        let bin = std::fs::symlink_metadata(dir.path().join("bin")).unwrap();
        assert_eq!(bin.permissions().mode() & 0o7777, 0o755);
        // The end-of-archive blocks are left for the caller to hash.
        assert!(trailing.iter().all(|&b| b == 0));
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let (dir, r) = unpack_entries(|b| {
            raw_entry(b, "a/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "a/f", tar::EntryType::Regular, None, b"1");
            raw_entry(b, "a", tar::EntryType::Regular, None, b"file now");
            raw_entry(b, "b", tar::EntryType::Regular, None, b"1");
            raw_entry(b, "b", tar::EntryType::Regular, None, b"2");
        });
        r.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"file now");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"2");
    }

    #[test]
    fn entry_limit_and_truncation_are_errors() {
        let (_d, r) = unpack_entries(|b| {
            for i in 0..5 {
                raw_entry(b, &format!("f{i}"), tar::EntryType::Regular, None, b"");
            }
        });
        r.unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        raw_entry(
            &mut builder,
            "big",
            tar::EntryType::Regular,
            None,
            &[7u8; 4096],
        );
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&bytes[..1000], dir.path(), 10).unwrap_err();
        assert!(
            matches!(err, UnpackError::Io { ref entry, .. } if entry == "big"),
            "{err:?}"
        );
        let err = unpack(&bytes[..], dir.path(), 0).unwrap_err();
        assert!(matches!(err, UnpackError::TooManyEntries { max: 0 }));
    }

    #[test]
    fn zstd_streams_with_several_frames_decode_fully() {
        // Two frames produced by the reference `zstd` tool for "hello " and "world"
        // would need the binary; build them with ruzstd's encoder instead.
        let mut data = Vec::new();
        for part in [&b"hello "[..], &b"world"[..]] {
            data.extend(ruzstd::encoding::compress_to_vec(
                part,
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
        }
        // A skippable frame in between.
        let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        let first_len = ruzstd::encoding::compress_to_vec(
            &b"hello "[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        )
        .len();
        let mut stream = data[..first_len].to_vec();
        stream.append(&mut skippable);
        stream.extend_from_slice(&data[first_len..]);
        let mut out = Vec::new();
        ZstdStream::new(&stream[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&stream).unwrap();
        use std::io::Seek as _;
        f.rewind().unwrap();
        let mut out = Vec::new();
        decompress(f).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
    }
}
