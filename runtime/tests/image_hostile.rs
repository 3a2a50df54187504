//! Hostile and broken images (as root): each import fails with an error naming the file, the
//! entry and the reason, leaves the store exactly as it was, and writes nothing outside it.

mod image_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_runtime::image::{ImageError, ImageStore, Limits, Reason, UnpackError};
use image_support::{Compress, Tamper, TarBuilder, archive_layout, snapshot, write_layout};

/// Imports a one-layer layout made of `layer` and returns the error, after checking that the
/// store is unchanged.
fn import_fails(layer: Vec<u8>, how: Compress, tamper: Tamper) -> ImageError {
    import_fails_with(layer, how, tamper, Limits::default())
}

fn import_fails_with(layer: Vec<u8>, how: Compress, tamper: Tamper, limits: Limits) -> ImageError {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open_with_limits(root.path(), limits).unwrap();
    // A good image first, so "unchanged" covers an index and blobs that must survive.
    let good = tempfile::tempdir().unwrap();
    write_layout(
        good.path(),
        &[TarBuilder::default().file("ok", b"ok").finish()],
        Compress::Gzip,
        Some("good"),
        Tamper::None,
    );
    store.import(good.path(), None).unwrap();
    let before = snapshot(root.path());
    let index_before = fs::read(store.dir().join("index.json")).unwrap();

    let src = tempfile::tempdir().unwrap();
    write_layout(src.path(), &[layer], how, Some("evil:1"), tamper);
    let err = store.import(src.path(), None).unwrap_err();

    assert_eq!(
        snapshot(root.path()),
        before,
        "the failed import left something behind: {err}"
    );
    assert_eq!(
        fs::read(store.dir().join("index.json")).unwrap(),
        index_before
    );
    assert!(store.resolve("good").is_ok());
    assert!(matches!(
        store.resolve("evil:1"),
        Err(ImageError::NotFound { .. })
    ));
    err
}

fn rejection(err: &ImageError) -> (&str, &Reason) {
    match err {
        ImageError::Unpack {
            source: UnpackError::Rejected { entry, reason },
            ..
        } => (entry, reason),
        other => panic!("expected an unpack rejection, got {other:?}"),
    }
}

/// The whole chain, as the CLI prints it.
fn chain(err: &ImageError) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[test]
fn path_traversal_is_rejected() {
    let err = import_fails(
        TarBuilder::default()
            .file("../../etc/berth-evil", b"x")
            .finish(),
        Compress::Gzip,
        Tamper::None,
    );
    assert_eq!(
        rejection(&err),
        ("../../etc/berth-evil", &Reason::ParentComponent)
    );
    assert!(!Path::new("/etc/berth-evil").exists());
    let message = chain(&err);
    assert!(
        message.contains("blobs/sha256/")
            && message.contains("../../etc/berth-evil")
            && message.contains("`..`"),
        "{message}"
    );
}

#[test]
fn absolute_paths_are_rejected() {
    let err = import_fails(
        TarBuilder::default().file("/etc/berth-evil", b"x").finish(),
        Compress::Gzip,
        Tamper::None,
    );
    assert_eq!(rejection(&err), ("/etc/berth-evil", &Reason::AbsolutePath));
    assert!(!Path::new("/etc/berth-evil").exists());
}

#[test]
fn writing_through_a_symlink_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap();
    let layer = TarBuilder::default()
        .entry("a", tar::EntryType::Symlink, Some(target), b"")
        .file("a/passwd", b"pwned")
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert_eq!(
        rejection(&err),
        (
            "a/passwd",
            &Reason::SymlinkInPath {
                component: "a".into()
            }
        )
    );
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "wrote outside the layer"
    );

    // Also through a symlinked directory further down, and with a relative escape.
    let layer = TarBuilder::default()
        .dir("x/")
        .entry(
            "x/up",
            tar::EntryType::Symlink,
            Some("../../../../../../.."),
            b"",
        )
        .file("x/up/tmp/berth-evil", b"pwned")
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert_eq!(
        rejection(&err).1,
        &Reason::SymlinkInPath {
            component: "up".into()
        }
    );
    assert!(!Path::new("/tmp/berth-evil").exists());
}

#[test]
fn hardlinks_out_of_the_layer_are_rejected() {
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    let layer = TarBuilder::default()
        .entry("passwd", tar::EntryType::Link, Some("/etc/passwd"), b"")
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    let (entry, reason) = rejection(&err);
    assert_eq!(entry, "passwd");
    assert!(
        matches!(reason, Reason::LinkTarget { target, .. } if target == "/etc/passwd"),
        "{reason}"
    );

    let layer = TarBuilder::default()
        .entry(
            "passwd",
            tar::EntryType::Link,
            Some("../../../../../etc/passwd"),
            b"",
        )
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert!(matches!(rejection(&err).1, Reason::LinkTarget { .. }));

    let layer = TarBuilder::default()
        .entry("etc", tar::EntryType::Symlink, Some("/etc"), b"")
        .entry("passwd", tar::EntryType::Link, Some("etc/passwd"), b"")
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert!(matches!(rejection(&err).1, Reason::LinkTarget { .. }));
    // No link to the host's file was made (its link count would have grown).
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
}

#[test]
fn device_nodes_are_rejected() {
    let layer = TarBuilder::default()
        .device("dev/sda", tar::EntryType::Block, 8, 0)
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert_eq!(
        rejection(&err),
        (
            "dev/sda",
            &Reason::Device {
                kind: "block",
                major: 8,
                minor: 0
            }
        )
    );
    let layer = TarBuilder::default()
        .device("dev/mem", tar::EntryType::Char, 1, 1)
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::None);
    assert!(
        chain(&err).contains("character device 1:1 is not allowed"),
        "{}",
        chain(&err)
    );
}

#[test]
fn blob_digest_mismatch_is_rejected() {
    let err = import_fails(
        TarBuilder::default().file("f", b"x").finish(),
        Compress::Gzip,
        Tamper::LayerByte,
    );
    assert!(matches!(err, ImageError::BlobDigest { .. }), "{err:?}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

#[test]
fn blob_size_mismatch_is_rejected() {
    let err = import_fails(
        TarBuilder::default().file("f", b"x").finish(),
        Compress::Gzip,
        Tamper::LayerSize,
    );
    assert!(matches!(err, ImageError::BlobSize { .. }), "{err:?}");
}

#[test]
fn diff_id_mismatch_is_rejected() {
    for how in [Compress::None, Compress::Gzip, Compress::Zstd] {
        let err = import_fails(
            TarBuilder::default().file("f", b"x").finish(),
            how,
            Tamper::DiffId,
        );
        assert!(matches!(err, ImageError::DiffId { .. }), "{how:?}: {err:?}");
    }
}

#[test]
fn truncated_gzip_is_rejected() {
    let layer = TarBuilder::default()
        .file("big", &vec![42u8; 64 * 1024])
        .file("after", b"x")
        .finish();
    let err = import_fails(layer, Compress::Gzip, Tamper::TruncateLayer);
    assert!(
        matches!(
            err,
            ImageError::Unpack { .. } | ImageError::Decompress { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn decompression_bombs_stop_at_the_limit() {
    let layer = TarBuilder::default()
        .file("zeros", &vec![0u8; 1 << 20])
        .finish();
    let limits = Limits {
        max_layer_bytes: 64 * 1024,
        ..Limits::default()
    };
    let err = import_fails_with(layer, Compress::Gzip, Tamper::None, limits);
    assert!(
        chain(&err).contains("larger than the limit of 65536 bytes"),
        "{}",
        chain(&err)
    );
}

#[test]
fn broken_layouts_are_named() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let before = snapshot(root.path());
    let empty = tempfile::tempdir().unwrap();
    let err = store.import(empty.path(), None).unwrap_err();
    assert!(
        matches!(err, ImageError::NotALayout { .. }) && err.to_string().contains("oci-layout"),
        "{err}"
    );

    let not_tar = empty.path().join("junk.tar");
    fs::write(&not_tar, vec![7u8; 2048]).unwrap();
    let err = store.import(&not_tar, None).unwrap_err();
    assert!(chain(&err).contains("junk.tar"), "{}", chain(&err));

    // An archive whose layout lacks a blob.
    let layout = empty.path().join("layout");
    let manifest = write_layout(
        &layout,
        &[TarBuilder::default().file("f", b"x").finish()],
        Compress::Gzip,
        Some("x"),
        Tamper::None,
    );
    fs::remove_file(layout.join("blobs/sha256").join(manifest.hex())).unwrap();
    let archive = empty.path().join("x.tar");
    archive_layout(&layout, &archive);
    let err = store.import(&archive, None).unwrap_err();
    assert!(
        err.to_string().contains("x.tar") && err.to_string().contains("missing"),
        "{err}"
    );

    // A layout for another platform.
    let foreign = empty.path().join("foreign");
    write_layout(
        &foreign,
        &[TarBuilder::default().file("f", b"x").finish()],
        Compress::Gzip,
        Some("x"),
        Tamper::None,
    );
    let index_path = foreign.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["platform"] = serde_json::json!({"os": "linux", "architecture": "s390x"});
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let err = store.import(&foreign, None).unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingImage { .. })
            && err.to_string().contains("linux/s390x"),
        "{err}"
    );

    assert_eq!(snapshot(root.path()), before);
}
