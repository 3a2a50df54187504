//! Round trips through the real OCI tools (as root): layouts written by `umoci` and archives
//! written by `skopeo` import with the expected files, whiteouts converted to overlayfs form,
//! layers shared, and the result mounts as overlayfs with deletions applied.

mod image_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::image::{ImageError, ImageStore};
use image_support::{Compress, Tamper, TarBuilder, busybox_rootfs, run, write_layout};

/// umoci layout `L` with `base` (busybox) and `v2` (base minus /etc/group and /var/www, plus
/// /etc/motd).
fn umoci_layout(work: &Path) -> PathBuf {
    let layout = work.join("L");
    let l = layout.to_str().unwrap();
    let umoci = |args: &[&str]| run(Command::new("umoci").args(args));
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &format!("{l}:base")]);
    let bundle = work.join("B");
    umoci(&[
        "unpack",
        "--image",
        &format!("{l}:base"),
        bundle.to_str().unwrap(),
    ]);
    busybox_rootfs(&bundle.join("rootfs"));
    umoci(&[
        "repack",
        "--image",
        &format!("{l}:base"),
        bundle.to_str().unwrap(),
    ]);
    let bundle2 = work.join("B2");
    umoci(&[
        "unpack",
        "--image",
        &format!("{l}:base"),
        bundle2.to_str().unwrap(),
    ]);
    fs::remove_file(bundle2.join("rootfs/etc/group")).unwrap();
    fs::remove_dir_all(bundle2.join("rootfs/var/www")).unwrap();
    fs::write(bundle2.join("rootfs/etc/motd"), b"new\n").unwrap();
    umoci(&[
        "repack",
        "--image",
        &format!("{l}:v2"),
        bundle2.to_str().unwrap(),
    ]);
    layout
}

fn all_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            out.extend(all_names(&entry.path()));
        }
    }
    out
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// An overlayfs mount of image layers, unmounted on drop (even when the test fails).
struct Overlay(PathBuf);

impl Overlay {
    fn mount(layers: &[PathBuf], target: &Path) -> Overlay {
        fs::create_dir_all(target).unwrap();
        let lower: Vec<&str> = layers.iter().rev().map(|p| p.to_str().unwrap()).collect();
        let options = format!("lowerdir={}", lower.join(":"));
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting overlay {options}: {e}"));
        Overlay(target.to_owned())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn umoci_layout_imports_with_whiteouts_converted() {
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_layout(work.path());
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();

    let imported = store.import(&layout, None).unwrap();
    let names: Vec<_> = imported.iter().map(|i| i.name.clone().unwrap()).collect();
    assert_eq!(names, ["base:latest", "v2:latest"]);
    // v2 shares base's layer: unpacked once.
    assert_eq!(
        (
            imported[0].layers_unpacked,
            imported[1].layers_unpacked,
            imported[1].layers_reused
        ),
        (1, 1, 1)
    );

    let base = store.resolve("base").unwrap();
    let v2 = store.resolve("v2:latest").unwrap();
    assert_eq!(v2.layers.len(), 2);
    assert_eq!(v2.layers[0], base.layers[0]);
    assert_eq!(
        fs::read(base.layers[0].join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    let top = &v2.layers[1];
    assert!(
        is_whiteout(&top.join("etc/group")),
        "etc/group should be a 0:0 char device"
    );
    assert!(
        is_whiteout(&top.join("var/www")),
        "var/www should be a 0:0 char device"
    );
    assert_eq!(fs::read(top.join("etc/motd")).unwrap(), b"new\n");
    for layer in &v2.layers {
        let names = all_names(layer);
        assert!(
            names.iter().all(|n| !n.starts_with(".wh.")),
            "whiteout file left in {}",
            layer.display()
        );
    }

    // overlayfs agrees: the deleted files are gone, the rest is there.
    let mnt = work.path().join("mnt");
    let _overlay = Overlay::mount(&v2.layers, &mnt);
    assert!(!mnt.join("etc/group").exists());
    assert!(!mnt.join("var/www").exists());
    assert!(mnt.join("etc/passwd").is_file());
    assert_eq!(fs::read(mnt.join("etc/motd")).unwrap(), b"new\n");
    assert!(
        fs::symlink_metadata(mnt.join("bin/sh"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // Importing again unpacks nothing and changes nothing.
    let inode = fs::metadata(&v2.layers[1]).unwrap().ino();
    let again = store.import(&layout, None).unwrap();
    assert!(again.iter().all(|i| i.layers_unpacked == 0));
    assert_eq!(fs::metadata(&v2.layers[1]).unwrap().ino(), inode);
    assert_eq!(store.list().unwrap().len(), 2);

    // --tag names exactly one image.
    let err = store.import(&layout, Some("x:1")).unwrap_err();
    assert!(
        matches!(err, ImageError::TagNeedsOneImage { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn skopeo_archives_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_layout(work.path());
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let from_umoci = store.import(&layout, None).unwrap();
    let v2_digest = from_umoci[1].manifest_digest.clone();

    // oci-archive with a full name as its ref.
    let archive = work.path().join("v2.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:v2", layout.display()),
        &format!("oci-archive:{}:busybox:v2", archive.display()),
    ]));
    let imported = store.import(&archive, None).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name.as_deref(), Some("busybox:v2"));
    assert_eq!(
        imported[0].manifest_digest, v2_digest,
        "skopeo copies blobs verbatim"
    );
    assert_eq!(
        (imported[0].layers_unpacked, imported[0].layers_reused),
        (0, 2)
    );

    // The same archive gzip-compressed, renamed with --tag, into a fresh store.
    let gz = work.path().join("v2.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&fs::read(&archive).unwrap()).unwrap();
    enc.finish().unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let store2 = ImageStore::open(root2.path()).unwrap();
    let imported = store2.import(&gz, Some("mine:1")).unwrap();
    assert_eq!(imported[0].name.as_deref(), Some("mine:1"));
    assert_eq!(imported[0].layers_unpacked, 2);
    let image = store2.resolve("mine:1").unwrap();
    assert_eq!(image.manifest_digest, v2_digest);
    assert!(is_whiteout(&image.layers[1].join("etc/group")));
    assert!(
        fs::read_dir(store2.dir().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // zstd layers: different blobs, same diff ids, so the unpacked layers are reused.
    let zstd = work.path().join("Z");
    run(Command::new("skopeo").args([
        "copy",
        "--dest-compress-format",
        "zstd",
        "--dest-compress",
        &format!("oci:{}:v2", layout.display()),
        &format!("oci:{}:v2z", zstd.display()),
    ]));
    let imported = store.import(&zstd, None).unwrap();
    assert_eq!(imported[0].name.as_deref(), Some("v2z:latest"));
    assert_ne!(imported[0].manifest_digest, v2_digest);
    assert_eq!(
        (imported[0].layers_unpacked, imported[0].layers_reused),
        (0, 2)
    );
    assert_eq!(
        store.resolve("v2z").unwrap().layers,
        store.resolve("busybox:v2").unwrap().layers
    );
}

#[test]
fn opaque_directories_hide_lower_content_under_overlayfs() {
    let work = tempfile::tempdir().unwrap();
    let lower = TarBuilder::default()
        .dir("data/")
        .file("data/old", b"old")
        .file("data/keep-not", b"x")
        .finish();
    let upper = TarBuilder::default()
        .dir("data/")
        .file("data/.wh..wh..opq", b"")
        .file("data/new", b"new")
        .finish();
    let layout = work.path().join("layout");
    write_layout(
        &layout,
        &[lower, upper],
        Compress::Zstd,
        Some("opaque"),
        Tamper::None,
    );
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    store.import(&layout, None).unwrap();
    let image = store.resolve("opaque").unwrap();
    assert_eq!(
        xattr::get(image.layers[1].join("data"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(image.config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        image.config.exposed_ports.iter().collect::<Vec<_>>(),
        ["80/tcp"]
    );
    assert_eq!(image.config.labels.get("a").map(String::as_str), Some("b"));

    let mnt = work.path().join("mnt");
    let _overlay = Overlay::mount(&image.layers, &mnt);
    let mut names: Vec<_> = fs::read_dir(mnt.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["new"]);
}
