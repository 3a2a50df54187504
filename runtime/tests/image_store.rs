//! Image store end to end (as root): build from a busybox root filesystem, resolve, list,
//! inspect, remove with garbage collection, and concurrent writers.

mod image_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};

use berth_runtime::image::{BuildOptions, ImageError, ImageStore};
use image_support::{Compress, Tamper, TarBuilder, busybox_rootfs, snapshot, write_layout};

fn build_options(rootfs: &Path, tag: &str) -> BuildOptions {
    BuildOptions {
        rootfs_dir: rootfs.to_owned(),
        tag: tag.to_owned(),
        entrypoint: vec!["/bin/httpd".into()],
        cmd: vec!["-f".into(), "-p".into(), "8080".into()],
        env: vec!["PATH=/bin".into(), "GREETING=hello world".into()],
        working_dir: Some("/var/www".into()),
        user: Some("33:33".into()),
        created: Some("2024-05-06T07:08:09Z".parse().unwrap()),
        ..BuildOptions::default()
    }
}

#[test]
fn build_resolve_list_inspect_remove() {
    let root = tempfile::tempdir().unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let store = ImageStore::open(root.path()).unwrap();

    let built = store
        .build(build_options(rootfs.path(), "busybox:test"))
        .unwrap();
    assert_eq!(built.name.as_deref(), Some("busybox:test"));
    assert_eq!((built.layers_unpacked, built.layers_reused), (1, 0));

    let image = store.resolve("busybox:test").unwrap();
    assert_eq!(image.manifest_digest, built.manifest_digest);
    assert_eq!(image.name.as_deref(), Some("busybox:test"));
    assert_eq!(image.config.entrypoint, ["/bin/httpd"]);
    assert_eq!(image.config.cmd, ["-f", "-p", "8080"]);
    assert_eq!(image.config.env, ["PATH=/bin", "GREETING=hello world"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/var/www"));
    assert_eq!(image.config.user.as_deref(), Some("33:33"));
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert!(layer.starts_with(store.dir().join("layers/sha256")));
    assert_eq!(
        fs::read(layer.join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(layer.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(layer.join("bin/busybox")).unwrap().mtime(),
        fs::metadata(rootfs.path().join("bin/busybox"))
            .unwrap()
            .mtime()
    );
    assert!(
        fs::read_to_string(layer.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0")
    );

    // Every way of naming it resolves to the same image.
    for reference in [
        built.manifest_digest.as_str(),
        built.manifest_digest.short(),
        &built.manifest_digest.hex()[..6],
    ] {
        assert_eq!(
            store.resolve(reference).unwrap().manifest_digest,
            built.manifest_digest,
            "{reference}"
        );
    }
    assert!(matches!(
        store.resolve("busybox"),
        Err(ImageError::NotFound { .. })
    ));

    // Deterministic: the same rootfs and options give the same image, and nothing is unpacked
    // again (same layer inode).
    let inode = fs::metadata(layer).unwrap().ino();
    let again = store
        .build(build_options(rootfs.path(), "busybox:again"))
        .unwrap();
    assert_eq!(again.manifest_digest, built.manifest_digest);
    assert_eq!((again.layers_unpacked, again.layers_reused), (0, 1));
    assert_eq!(fs::metadata(layer).unwrap().ino(), inode);

    let list = store.list().unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.clone().unwrap()).collect();
    assert_eq!(names, ["busybox:again", "busybox:test"]);
    let busybox_size = fs::metadata("/bin/busybox").unwrap().len();
    assert!(
        list[0].size > busybox_size,
        "size {} should cover busybox",
        list[0].size
    );
    assert_eq!(list[0].created.unwrap().to_string(), "2024-05-06T07:08:09Z");

    let details = store.inspect("busybox:test").unwrap();
    assert_eq!(details.names, ["busybox:test", "busybox:again"]);
    assert_eq!(details.config["config"]["User"], "33:33");
    assert_eq!(
        details.manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let json = serde_json::to_value(&details).unwrap();
    assert_eq!(json["manifest_digest"], built.manifest_digest.as_str());

    // Removing one of two tags only untags, even while in use.
    let removal = store.remove("busybox:again", &|_| true).unwrap();
    assert_eq!(removal.untagged, ["busybox:again"]);
    assert_eq!(removal.deleted, None);
    assert!(layer.is_dir());

    // The last tag: refused while a container uses it, naming the image.
    let err = store
        .remove("busybox:test", &|d| *d == built.manifest_digest)
        .unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }));
    let message = err.to_string();
    assert!(
        message.contains("busybox:test") && message.contains("in use"),
        "{message}"
    );
    assert!(store.resolve("busybox:test").is_ok());

    let removal = store.remove("busybox:test", &|_| false).unwrap();
    assert_eq!(removal.deleted.as_ref(), Some(&built.manifest_digest));
    assert_eq!((removal.garbage.blobs, removal.garbage.layers), (3, 1));
    assert!(store.list().unwrap().is_empty());
    assert!(
        fs::read_dir(store.dir().join("blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        fs::read_dir(store.dir().join("layers/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        fs::read_dir(store.dir().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn shared_layers_survive_removal_of_one_image() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let base = TarBuilder::default()
        .dir("etc/")
        .file("etc/os-release", b"base\n")
        .finish();
    let top_a = TarBuilder::default().file("a", b"a").finish();
    let top_b = TarBuilder::default().file("b", b"b").finish();
    let src = tempfile::tempdir().unwrap();
    write_layout(
        &src.path().join("a"),
        &[base.clone(), top_a],
        Compress::Gzip,
        Some("a:1"),
        Tamper::None,
    );
    write_layout(
        &src.path().join("b"),
        &[base, top_b],
        Compress::Gzip,
        Some("b:1"),
        Tamper::None,
    );
    store.import(&src.path().join("a"), None).unwrap();
    let b = store.import(&src.path().join("b"), None).unwrap();
    assert_eq!((b[0].layers_unpacked, b[0].layers_reused), (1, 1));
    let image_b = store.resolve("b:1").unwrap();
    assert_eq!(image_b.layers.len(), 2);

    let removal = store.remove("a:1", &|_| false).unwrap();
    assert_eq!(removal.garbage.layers, 1, "only a's own top layer goes");
    for layer in &image_b.layers {
        assert!(layer.is_dir(), "{} was collected", layer.display());
    }
    assert_eq!(fs::read(image_b.layers[1].join("b")).unwrap(), b"b");
    assert!(store.resolve("b:1").is_ok());
}

#[test]
fn concurrent_imports_keep_every_tag() {
    let root = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let threads = 4;
    for i in 0..threads {
        let layer = TarBuilder::default()
            .file(&format!("file{i}"), format!("{i}").as_bytes())
            .finish();
        write_layout(
            &src.path().join(format!("l{i}")),
            &[layer],
            Compress::Gzip,
            None,
            Tamper::None,
        );
    }
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (root, src, barrier) = (
                root.path().to_owned(),
                src.path().to_owned(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                let store = ImageStore::open(&root).unwrap();
                barrier.wait();
                store
                    .import(&src.join(format!("l{i}")), Some(&format!("img{i}")))
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = ImageStore::open(root.path()).unwrap();
    let names: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|s| s.name.unwrap())
        .collect();
    assert_eq!(
        names,
        ["img0:latest", "img1:latest", "img2:latest", "img3:latest"]
    );
    assert!(
        fs::read_dir(store.dir().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn build_rejects_bad_input_without_leaving_anything() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let before = snapshot(root.path());
    let rootfs = tempfile::tempdir().unwrap();
    fs::write(rootfs.path().join("f"), b"x").unwrap();

    let mut options = build_options(rootfs.path(), "bad:env");
    options.env = vec!["NOEQUALS".into()];
    assert!(matches!(
        store.build(options),
        Err(ImageError::BadEnv { .. })
    ));

    let options = build_options(&rootfs.path().join("f"), "bad:dir");
    assert!(matches!(
        store.build(options),
        Err(ImageError::NotADirectory { .. })
    ));

    let options = build_options(rootfs.path(), "Bad Name");
    assert!(matches!(
        store.build(options),
        Err(ImageError::Reference(_))
    ));

    nix::sys::stat::mknod(
        &rootfs.path().join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let err = store
        .build(build_options(rootfs.path(), "bad:dev"))
        .unwrap_err();
    assert!(matches!(err, ImageError::BuildDevice { .. }), "{err}");
    assert!(err.to_string().contains("null"), "{err}");
    assert_eq!(snapshot(root.path()), before);
}

/// Writes `value` as a blob of `layout`; returns its descriptor fields.
fn put_json(layout: &Path, value: &serde_json::Value) -> (String, usize) {
    let bytes = serde_json::to_vec(value).unwrap();
    let digest = berth_runtime::image::Digest::of(&bytes);
    fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    (digest.to_string(), bytes.len())
}

#[test]
fn nested_indexes_pick_the_host_platform_and_docker_media_types_work() {
    let src = tempfile::tempdir().unwrap();
    let layout = src.path();
    let layer = TarBuilder::default().file("hello", b"docker").finish();
    // A layout written the usual way, then its manifest rewritten with docker media types.
    let oci_manifest = write_layout(layout, &[layer], Compress::Gzip, None, Tamper::None);
    let manifest_path = layout.join("blobs/sha256").join(oci_manifest.hex());
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
    manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
    manifest["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
    let (docker_manifest, docker_size) = put_json(layout, &manifest);
    let host_arch = oci_spec::image::Arch::default().to_string();
    // Inner list: a foreign platform first (its blob does not even exist), then the host's.
    let inner = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": format!("sha256:{}", "0".repeat(64)),
                "size": 1,
                "platform": {"os": "linux", "architecture": "riscv64"},
            },
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": docker_manifest,
                "size": docker_size,
                "platform": {"os": "linux", "architecture": host_arch},
            },
        ],
    });
    let (inner_digest, inner_size) = put_json(layout, &inner);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": inner_digest,
            "size": inner_size,
            "annotations": {
                "io.containerd.image.name": "registry.example:5000/team/hello:1.0",
                "org.opencontainers.image.ref.name": "1.0",
            },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let imported = store.import(layout, None).unwrap();
    assert_eq!(
        imported[0].name.as_deref(),
        Some("registry.example:5000/team/hello:1.0")
    );
    assert_eq!(imported[0].manifest_digest.as_str(), docker_manifest);
    let image = store
        .resolve("registry.example:5000/team/hello:1.0")
        .unwrap();
    assert_eq!(fs::read(image.layers[0].join("hello")).unwrap(), b"docker");
    assert_eq!(image.config.cmd, ["/bin/sh"]);
}

#[test]
fn removing_by_digest_deletes_every_tag() {
    let src = tempfile::tempdir().unwrap();
    let layer = TarBuilder::default().file("f", b"f").finish();
    write_layout(src.path(), &[layer], Compress::Gzip, None, Tamper::None);
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let digest = store.import(src.path(), Some("one:1")).unwrap()[0]
        .manifest_digest
        .clone();
    store.import(src.path(), Some("two:2")).unwrap();
    // Two tags on one image: a digest prefix removes the image with both.
    let removal = store.remove(&digest.hex()[..8], &|_| false).unwrap();
    assert_eq!(removal.untagged, ["one:1", "two:2"]);
    assert_eq!(removal.deleted, Some(digest));
    assert!(store.list().unwrap().is_empty());
    assert_eq!((removal.garbage.blobs, removal.garbage.layers), (3, 1));
}
