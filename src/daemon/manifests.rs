//! `berth daemon --manifests DIR`: k3s' auto-deploy directory, with pruning.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file directly in the directory is applied at start and
//! again whenever it changes (inotify, with a periodic rescan as a safety net for missed events).
//! Each file is its own apply request: a file that fails to parse or validate changes nothing,
//! is reported in the daemon's log and as a `Warning` event, and the other files still apply.
//! Objects carry the annotation `berth.dev/source: <absolute file path>` (set by the apply), so:
//! - an object removed from a file is pruned when the file is applied again (the file's path is
//!   the request's prune scope), and
//! - removing a file deletes everything it created, also when it was removed while the daemon
//!   was down (at start, sources under the directory whose file is gone are pruned).
//!
//! A file is applied again only when its content changed since it was last applied (or failed),
//! so a rescan of an unchanged directory writes nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use berth_api::{
    Time,
    core_v1::{Event, EventSource, EventType, ObjectReference},
    object::KINDS,
};
use berth_apiserver::apply::{ApplyAction, ApplyRequest, ManifestFile, SOURCE_ANNOTATION};
use berth_store::RedbStore;
use notify::Watcher as _;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How often the directory is rescanned even without inotify events.
const RESCAN: Duration = Duration::from_secs(30);
/// How long to wait for a burst of file events (an editor's write, rename, chmod) to settle.
const SETTLE: Duration = Duration::from_millis(200);

/// The state of one manifest directory.
pub struct ManifestDir {
    dir: PathBuf,
    store: RedbStore,
    /// Content hash of every file as last applied (successfully or not).
    applied: BTreeMap<PathBuf, [u8; 32]>,
}

/// What one pass over the directory did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files applied (their content was new).
    pub applied: Vec<PathBuf>,
    /// Files that failed, with the error.
    pub failed: Vec<(PathBuf, String)>,
    /// Files whose objects were pruned because the file is gone.
    pub removed: Vec<PathBuf>,
}

impl ManifestDir {
    pub fn new(dir: &Path, store: RedbStore) -> anyhow::Result<Self> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("manifest directory {}", dir.display()))?;
        anyhow::ensure!(
            dir.is_dir(),
            "manifest directory {} is not a directory",
            dir.display()
        );
        Ok(Self {
            dir,
            store,
            applied: BTreeMap::new(),
        })
    }

    /// Applies every new or changed file and prunes the objects of vanished files. At the first
    /// pass, "vanished" includes files removed while the daemon was down (found through the
    /// source annotations in the store).
    pub async fn sync(&mut self) -> SyncReport {
        let mut report = SyncReport::default();
        let files = match self.files() {
            Ok(files) => files,
            Err(err) => {
                warn!(dir = %self.dir.display(), error = %err, "cannot read the manifest directory");
                return report;
            }
        };
        let mut gone: BTreeSet<PathBuf> = self
            .applied
            .keys()
            .filter(|path| !files.contains(*path))
            .cloned()
            .collect();
        if self.applied.is_empty() {
            match self.stored_sources().await {
                Ok(sources) => gone.extend(sources.into_iter().filter(|p| !files.contains(p))),
                Err(err) => warn!(error = %format!("{err:#}"), "listing objects from manifests"),
            }
        }
        for path in &files {
            let content = match std::fs::read(path) {
                Ok(content) => content,
                // Removed between the listing and now: the next pass prunes it.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    report.failed.push((path.clone(), err.to_string()));
                    continue;
                }
            };
            let hash: [u8; 32] = Sha256::digest(&content).into();
            if self.applied.get(path) == Some(&hash) {
                continue;
            }
            self.applied.insert(path.clone(), hash);
            let content = match String::from_utf8(content) {
                Ok(content) => content,
                Err(_) => {
                    let message = format!("{}: not UTF-8 text", path.display());
                    self.report_failure(path, &message).await;
                    report.failed.push((path.clone(), message));
                    continue;
                }
            };
            match self.apply(path, Some(content)).await {
                Ok(()) => report.applied.push(path.clone()),
                Err(message) => {
                    self.report_failure(path, &message).await;
                    report.failed.push((path.clone(), message));
                }
            }
        }
        for path in gone {
            match self.apply(&path, None).await {
                Ok(()) => {
                    self.applied.remove(&path);
                    report.removed.push(path);
                }
                Err(message) => {
                    warn!(file = %path.display(), error = %message, "pruning a removed manifest")
                }
            }
        }
        report
    }

    /// Applies one file (`None`: the file is gone, prune everything it created).
    async fn apply(&self, path: &Path, content: Option<String>) -> Result<(), String> {
        let source = path.display().to_string();
        let request = ApplyRequest {
            files: content
                .map(|content| ManifestFile {
                    path: source.clone(),
                    content,
                })
                .into_iter()
                .collect(),
            source_prefix: None,
            prune_scopes: vec![source.clone()],
        };
        let response = berth_apiserver::apply::apply(&self.store, request, false, true)
            .await
            .map_err(|err| err.to_string())?;
        for item in &response.items {
            if item.action != ApplyAction::Unchanged {
                info!(
                    file = %source,
                    kind = %item.kind,
                    namespace = item.namespace.as_deref().unwrap_or(""),
                    name = %item.name,
                    action = ?item.action,
                    "manifest applied"
                );
            }
        }
        Ok(())
    }

    /// The manifest files directly in the directory, sorted.
    fn files(&self) -> std::io::Result<BTreeSet<PathBuf>> {
        let mut files = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let manifest = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            // Editors' and our own temporaries start with a dot.
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if manifest && !hidden && entry.file_type()?.is_file() {
                files.insert(path);
            }
        }
        Ok(files)
    }

    /// Files under the directory named by objects' source annotations.
    async fn stored_sources(&self) -> anyhow::Result<BTreeSet<PathBuf>> {
        let mut sources = BTreeSet::new();
        for kind in KINDS {
            let list = self.store.list(kind.kind, None, None).await?;
            for object in list.items {
                if let Some(source) = object.metadata().annotations.get(SOURCE_ANNOTATION) {
                    let path = Path::new(source);
                    if path.parent() == Some(self.dir.as_path()) {
                        sources.insert(path.to_owned());
                    }
                }
            }
        }
        Ok(sources)
    }

    /// A failed file: a warning in the log and a `Warning` event in `default`.
    async fn report_failure(&self, path: &Path, message: &str) {
        warn!(file = %path.display(), error = %message, "manifest not applied; nothing in it changed");
        let now = Time(jiff::Timestamp::now());
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut event = Event {
            involved_object: ObjectReference {
                kind: Some("ManifestFile".into()),
                name: Some(file_name),
                namespace: Some("default".into()),
                ..Default::default()
            },
            reason: Some("FailedApply".into()),
            message: Some(message.to_owned()),
            source: Some(EventSource {
                component: Some("berth-manifests".into()),
                host: None,
            }),
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(EventType::Warning),
            reporting_component: Some("berth-manifests".into()),
            ..Default::default()
        };
        event.metadata.generate_name = Some("manifests.".into());
        event.metadata.namespace = Some("default".into());
        if let Err(err) = self.store.create(event).await {
            warn!(error = %err, "recording the FailedApply event");
        }
    }

    /// Syncs now, then on every change in the directory (and every [`RESCAN`]) until `shutdown`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.send(());
            }
        })
        .and_then(|mut watcher| {
            watcher.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
            Ok(watcher)
        });
        let _watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                warn!(dir = %self.dir.display(), error = %err, "cannot watch the manifest directory; rescanning every 30s");
                None
            }
        };
        let report = self.sync().await;
        log_report(&self.dir, &report);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                event = rx.recv() => {
                    if event.is_none() {
                        // The watcher is gone; fall back to rescans.
                        tokio::time::sleep(RESCAN).await;
                    }
                    tokio::time::sleep(SETTLE).await;
                    while rx.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(RESCAN) => {}
            }
            let report = self.sync().await;
            log_report(&self.dir, &report);
        }
    }
}

fn log_report(dir: &Path, report: &SyncReport) {
    if report.applied.is_empty() && report.failed.is_empty() && report.removed.is_empty() {
        return;
    }
    info!(
        dir = %dir.display(),
        applied = report.applied.len(),
        failed = report.failed.len(),
        removed = report.removed.len(),
        "manifest directory synced"
    );
}
