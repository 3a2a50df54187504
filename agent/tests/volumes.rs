//! Root-only tests of pod volumes with real containers on a busybox image: a configMap volume read
//! inside the container and updated through `..data`, a readOnly mount that refuses writes, a
//! subPath file mount, tmpfs-backed emptyDir and secret volumes and their removal. This binary
//! has its own `main` because the runtime re-executes it as its container and exec shim.
//!
//! Run: `cargo test -p berth-agent --test volumes [-- FILTER]` as root.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use berth_agent::linux::LinuxContainerRuntime;
use berth_agent::pod::spec::FakeConfigSource;
use berth_agent::pod::volumes::{self, Volumes};
use berth_agent::runtime::{ContainerId, ContainerRuntime, ContainerSpec};
use berth_api::core_v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, Pod, SecretVolumeSource, StorageMedium,
    Volume, VolumeMount,
};
use berth_api::quantity::Quantity;
use berth_runtime::container::LinuxRuntime;
use berth_runtime::image::{BuildOptions, ImageStore};

const IMAGE: &str = "busybox:volumes-test";

struct Fixture {
    dir: tempfile::TempDir,
    tokio: tokio::runtime::Runtime,
    /// The synchronous runtime the cleanup guard uses.
    cleanup: LinuxRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = berth_runtime::testing::busybox_rootfs(dir.path());
        let images = ImageStore::open(&dir.path().join("images")).expect("image store");
        images
            .build(BuildOptions {
                rootfs_dir: rootfs,
                tag: IMAGE.into(),
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                ..BuildOptions::default()
            })
            .expect("build image");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let cleanup = linux_runtime(dir.path());
        Self {
            dir,
            tokio,
            cleanup,
        }
    }

    fn adapter(&self) -> LinuxContainerRuntime {
        LinuxContainerRuntime::new(
            linux_runtime(self.dir.path()),
            ImageStore::open(&self.dir.path().join("images")).expect("image store"),
        )
    }

    /// A fresh pods directory for one test, whose guard removes its pod's volumes.
    fn volumes(&self, test: &str) -> Volumes {
        Volumes::new(self.dir.path().join("pods").join(test))
    }
}

fn linux_runtime(dir: &Path) -> LinuxRuntime {
    berth_runtime::testing::test_runtime(dir, "/berth-test-volumes")
}

/// Removes the containers and the pod's volumes a test made, even when it panics.
struct Guard<'a> {
    fx: &'a Fixture,
    volumes: Volumes,
    uid: String,
    containers: Mutex<Vec<ContainerId>>,
}

impl<'a> Guard<'a> {
    fn new(fx: &'a Fixture, volumes: &Volumes, uid: &str) -> Self {
        Self {
            fx,
            volumes: volumes.clone(),
            uid: uid.into(),
            containers: Mutex::default(),
        }
    }

    fn container(&self, id: ContainerId) -> ContainerId {
        self.containers.lock().unwrap().push(id.clone());
        id
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for id in self.containers.lock().unwrap().drain(..) {
            if let Ok(id) = id.0.parse() {
                let _ = self.fx.cleanup.delete(&id, true);
            }
        }
        let _ = self.fx.tokio.block_on(self.volumes.remove(&self.uid));
    }
}

fn pod(uid: &str, volumes: Vec<Volume>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    pod.metadata.namespace = Some("shop".into());
    pod.metadata.uid = Some(uid.into());
    pod.spec.volumes = volumes;
    pod
}

fn volume_mount(name: &str, path: &str, read_only: bool, sub_path: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        sub_path: sub_path.map(str::to_owned),
    }
}

fn empty_dir(name: &str, memory: bool, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then_some(StorageMedium::Memory),
            size_limit: size.map(|s| Quantity::parse(s).expect("quantity")),
        }),
        ..Volume::default()
    }
}

async fn sh(rt: &LinuxContainerRuntime, id: &ContainerId, script: &str) -> (i32, String) {
    let argv = ["sh", "-c", script].map(str::to_owned).to_vec();
    let out = rt
        .exec(id, &argv, Duration::from_secs(10))
        .await
        .expect("exec");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.exit_code, text)
}

/// The mount table line of `path` on the host, if it is a mount point.
fn host_mount(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
    let path = path.display().to_string();
    mounts
        .lines()
        .find(|line| line.split(' ').nth(1) == Some(path.as_str()))
        .map(str::to_owned)
}

fn config_map_subpath_and_read_only_mounts_in_a_container(fx: &Fixture) {
    let uid = format!("cm-{}", std::process::id());
    let volumes = fx.volumes("config");
    let guard = Guard::new(fx, &volumes, &uid);
    let rt = fx.adapter();
    let pod = pod(
        &uid,
        vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "cfg".into(),
                    ..Default::default()
                }),
                ..Volume::default()
            },
            empty_dir("scratch", false, None),
            Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("db".into()),
                    ..Default::default()
                }),
                ..Volume::default()
            },
        ],
    );
    let source = FakeConfigSource::default()
        .with_config_map("shop", "cfg", &[("greeting", "hello"), ("old", "x")])
        .with_secret("shop", "db", &[("password", "s3")]);
    fx.tokio.block_on(async {
        let prepared = volumes.prepare(&pod, &source).await.expect("prepare");
        std::fs::write(prepared.paths["scratch"].join("seed"), "seeded").unwrap();
        let container = Container {
            name: "app".into(),
            volume_mounts: vec![
                volume_mount("config", "/etc/config", false, None),
                volume_mount("config", "/etc/greeting.txt", false, Some("greeting")),
                volume_mount("scratch", "/ro", true, None),
                volume_mount("scratch", "/rw", false, Some("sub/dir")),
                volume_mount("creds", "/secret", false, None),
            ],
            ..Container::default()
        };
        let spec = ContainerSpec {
            name: "app".into(),
            image: IMAGE.into(),
            argv: ["sleep", "100"].map(str::to_owned).to_vec(),
            mounts: volumes::mounts(&container, &prepared).expect("mounts"),
            ..ContainerSpec::default()
        };
        let id = guard.container(rt.create(spec).await.expect("create"));
        rt.start(&id).await.expect("start");

        assert_eq!(
            sh(&rt, &id, "cat /etc/config/greeting").await,
            (0, "hello".into())
        );
        assert_eq!(
            sh(&rt, &id, "cat /etc/greeting.txt").await,
            (0, "hello".into())
        );
        assert_eq!(sh(&rt, &id, "cat /ro/seed").await, (0, "seeded".into()));
        let (code, out) = sh(&rt, &id, "echo x > /ro/new").await;
        assert_ne!(code, 0, "a readOnly mount took a write: {out}");
        assert!(out.contains("Read-only file system"), "{out}");
        let (code, out) = sh(&rt, &id, "echo x > /etc/config/new").await;
        assert_ne!(code, 0, "a configMap volume took a write: {out}");
        assert_eq!(sh(&rt, &id, "echo w > /rw/file").await.0, 0);
        // The secret's tmpfs is nosuid,nodev on the host: its read-only bind keeps both.
        assert_eq!(sh(&rt, &id, "cat /secret/password").await, (0, "s3".into()));
        let (code, line) = sh(&rt, &id, "grep ' /secret ' /proc/mounts").await;
        assert_eq!(code, 0, "{line}");
        let options: Vec<&str> = line.split(' ').nth(3).unwrap_or("").split(',').collect();
        for option in ["ro", "nosuid", "nodev"] {
            assert!(options.contains(&option), "{option} missing: {line}");
        }
        assert_eq!(
            std::fs::read_to_string(prepared.paths["scratch"].join("sub/dir/file")).unwrap(),
            "w\n"
        );

        // An update reaches the directory mount through `..data`, a removed key disappears; the
        // subPath mount keeps what it had (as in Kubernetes).
        let source = FakeConfigSource::default()
            .with_config_map("shop", "cfg", &[("greeting", "bonjour")])
            .with_secret("shop", "db", &[("password", "s3")]);
        volumes.refresh(&pod, &source).await.expect("refresh");
        assert_eq!(
            sh(&rt, &id, "cat /etc/config/greeting").await,
            (0, "bonjour".into())
        );
        assert_ne!(sh(&rt, &id, "test -e /etc/config/old").await.0, 0);
        assert_eq!(
            sh(&rt, &id, "cat /etc/greeting.txt").await,
            (0, "hello".into())
        );
        rt.stop(&id, Duration::from_millis(100), None)
            .await
            .expect("stop");
    });
}

fn memory_volumes_are_tmpfs_and_removed_with_the_pod(fx: &Fixture) {
    let uid = format!("mem-{}", std::process::id());
    let volumes = fx.volumes("memory");
    let guard = Guard::new(fx, &volumes, &uid);
    let pod = pod(
        &uid,
        vec![
            empty_dir("cache", true, Some("4Mi")),
            Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("db".into()),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..Volume::default()
            },
        ],
    );
    let source = FakeConfigSource::default().with_secret("shop", "db", &[("password", "s3")]);
    fx.tokio.block_on(async {
        let prepared = volumes.prepare(&pod, &source).await.expect("prepare");
        let cache = &prepared.paths["cache"];
        let creds = &prepared.paths["creds"];
        let line = host_mount(cache).expect("emptyDir medium Memory is a mount");
        assert!(line.starts_with("tmpfs "), "{line}");
        assert!(line.contains("size=4096k"), "{line}");
        let line = host_mount(creds).expect("a secret volume is a mount");
        assert!(line.starts_with("tmpfs "), "{line}");
        assert_eq!(
            std::fs::read_to_string(creds.join("password")).unwrap(),
            "s3"
        );
        std::fs::write(cache.join("data"), "x").unwrap();

        // A re-adopted pod finds the same tmpfs, not a second one over it.
        let again = volumes.prepare(&pod, &source).await.expect("prepare again");
        assert_eq!(again, prepared);
        assert_eq!(std::fs::read_to_string(cache.join("data")).unwrap(), "x");

        volumes.remove(&uid).await.expect("remove");
        assert_eq!(host_mount(cache), None);
        assert_eq!(host_mount(creds), None);
        assert!(!volumes.dir().join(&uid).exists());
        volumes.remove(&uid).await.expect("remove again");
    });
    drop(guard);
}

type Test = berth_runtime::testing::Test<Fixture>;

const TESTS: &[Test] = &[
    (
        "config_map_subpath_and_read_only_mounts_in_a_container",
        config_map_subpath_and_read_only_mounts_in_a_container,
    ),
    (
        "memory_volumes_are_tmpfs_and_removed_with_the_pod",
        memory_volumes_are_tmpfs_and_removed_with_the_pod,
    ),
];

fn main() {
    berth_runtime::shim::run_if_shim();
    berth_runtime::testing::run_tests(TESTS, Fixture::new);
}
