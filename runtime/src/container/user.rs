//! Resolving an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) against the image's own
//! `/etc/passwd` and `/etc/group`, read through its layers as overlayfs will show them: the top
//! layer that has the file wins, an overlay whiteout (a 0:0 character device) deletes it, a
//! non-directory or an opaque directory on the way hides what the lower layers have.

use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use super::config::User;
use crate::syscall::secure_join;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error("invalid {what} {value:?} for {name} in /etc/{file}")]
    InvalidId {
        what: &'static str,
        value: String,
        name: String,
        file: &'static str,
    },
    #[error("reading {path} from the image")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The uid, gid and supplementary groups for `spec`. A uid without a gid takes the passwd
/// entry's group, else 0; supplementary groups are those whose member list names the user.
pub fn resolve_user(spec: &str, layers: &[PathBuf]) -> Result<User, UserError> {
    let passwd = read_table(layers, "etc/passwd")?;
    let group = read_table(layers, "etc/group")?;
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let entry = passwd
        .iter()
        .find(|f| f.len() >= 4 && (f[0] == user_part || f[2] == user_part));
    let uid = match (user_part.parse(), entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(f)) => f[2].parse().map_err(|_| UserError::InvalidId {
            what: "uid",
            value: f[2].clone(),
            name: user_part.to_owned(),
            file: "passwd",
        })?,
        (Err(_), None) => {
            return Err(UserError::UnknownUser {
                user: user_part.to_owned(),
            });
        }
    };
    let gid = match group_part {
        Some(name) => match name.parse() {
            Ok(gid) => gid,
            Err(_) => group
                .iter()
                .find(|f| f.len() >= 3 && f[0] == name)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| UserError::UnknownGroup {
                    group: name.to_owned(),
                })?,
        },
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let name = entry.map(|f| f[0].as_str());
    let additional_gids = group
        .iter()
        .filter(|f| f.len() >= 4 && name.is_some_and(|n| f[3].split(',').any(|m| m == n)))
        .filter_map(|f| f[2].parse().ok())
        .filter(|g| *g != gid)
        .collect();
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// A colon-separated table (`/etc/passwd`, `/etc/group`) as rows of fields; empty if absent.
fn read_table(layers: &[PathBuf], path: &str) -> Result<Vec<Vec<String>>, UserError> {
    let content = read_from_layers(layers, Path::new(path)).map_err(|source| UserError::Read {
        path: Path::new("/").join(path),
        source,
    })?;
    let text = String::from_utf8_lossy(content.as_deref().unwrap_or_default());
    Ok(text
        .lines()
        .map(|line| line.split(':').map(str::to_owned).collect())
        .collect())
}

/// The content of `path` (relative to the image root) as the stacked `layers` (lowest first)
/// show it, or `None` when no layer has it or a higher layer deleted or hid it.
pub fn read_from_layers(layers: &[PathBuf], path: &Path) -> io::Result<Option<Vec<u8>>> {
    let components: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let Some((_, parents)) = components.split_last() else {
        return Ok(None);
    };
    'layers: for layer in layers.iter().rev() {
        let mut dir = layer.clone();
        let mut hides_lower = false;
        for (depth, name) in components.iter().enumerate() {
            let entry = dir.join(name);
            let meta = match std::fs::symlink_metadata(&entry) {
                Ok(meta) => meta,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    if hides_lower {
                        return Ok(None);
                    }
                    continue 'layers;
                }
                Err(err) => return Err(err),
            };
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                return Ok(None); // a whiteout: deleted in this layer
            }
            let is_last = depth == parents.len();
            if is_last || meta.file_type().is_symlink() {
                // Found here (a symlink on the way is resolved within this layer).
                return match std::fs::read(secure_join(layer, path)) {
                    Ok(content) => Ok(Some(content)),
                    Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
                    Err(err) => Err(err),
                };
            }
            if !meta.is_dir() {
                return Ok(None); // a file where a directory should be hides the lower ones
            }
            if xattr::get(&entry, OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                hides_lower = true;
            }
            dir = entry;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn users_resolve_from_the_top_layer_that_has_the_files() {
        let lower = layer(&[("etc/passwd", "www:x:1:1::/:/bin/sh\n")]);
        let upper = layer(&[
            (
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
            ),
            ("etc/group", "root:x:0:\nwww:x:33:\nlogs:x:4:www,root\n"),
        ]);
        let layers = [lower.path().to_path_buf(), upper.path().to_path_buf()];
        let user = |spec| resolve_user(spec, &layers);
        let www = user("www").unwrap();
        assert_eq!((www.uid, www.gid, www.additional_gids), (33, 33, vec![4]));
        let by_uid = user("33").unwrap();
        assert_eq!((by_uid.uid, by_uid.gid), (33, 33));
        let numeric = user("1000").unwrap();
        assert_eq!((numeric.uid, numeric.gid), (1000, 0));
        assert_eq!(user("33:logs").unwrap().gid, 4);
        let explicit = user("5:6").unwrap();
        assert_eq!((explicit.uid, explicit.gid), (5, 6));
        assert!(matches!(user("nobody"), Err(UserError::UnknownUser { .. })));
        assert!(matches!(
            user("www:nogroup"),
            Err(UserError::UnknownGroup { .. })
        ));
    }

    #[test]
    fn a_file_in_place_of_a_directory_hides_the_lower_layers() {
        let lower = layer(&[("etc/group", "lower:x:7:\n")]);
        let upper = layer(&[("etc", "not a directory")]);
        let layers = [lower.path().to_path_buf(), upper.path().to_path_buf()];
        assert_eq!(
            read_from_layers(&layers, Path::new("etc/group")).unwrap(),
            None
        );
        let only_lower = [lower.path().to_path_buf()];
        assert_eq!(
            read_from_layers(&only_lower, Path::new("etc/group")).unwrap(),
            Some(b"lower:x:7:\n".to_vec())
        );
    }

    // Whiteouts (0:0 character devices) and the opaque xattr need root (mknod, trusted.*).
    #[test]
    fn whiteouts_and_opaque_directories_hide_the_lower_layers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("needs root (mknod, trusted.* xattrs); skipped");
            return;
        }
        let lower = layer(&[
            ("etc/group", "lower:x:7:\n"),
            ("etc/passwd", "lower:x:7:7::/:/bin/sh\n"),
        ]);
        let upper = layer(&[("etc/hosts", "")]);
        nix::sys::stat::mknod(
            &upper.path().join("etc/group"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let layers = [lower.path().to_path_buf(), upper.path().to_path_buf()];
        assert_eq!(
            read_from_layers(&layers, Path::new("etc/group")).unwrap(),
            None
        );
        assert!(
            read_from_layers(&layers, Path::new("etc/passwd"))
                .unwrap()
                .is_some()
        );

        xattr::set(upper.path().join("etc"), OPAQUE_XATTR, b"y").unwrap();
        assert_eq!(
            read_from_layers(&layers, Path::new("etc/passwd")).unwrap(),
            None
        );
        assert!(matches!(
            resolve_user("lower", &layers),
            Err(UserError::UnknownUser { .. })
        ));
    }
}
