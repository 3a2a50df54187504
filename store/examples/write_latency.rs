//! Write latency of the store: `cargo run --release -p berth-store --example write_latency [DIR]`.
//!
//! Measures acknowledged (fsynced) single creates, updates and 20-object batches, and how long a
//! watcher takes to see a write, on a database in DIR (a temporary directory by default: pass a
//! directory on the disk berth's `--root` will use).

use std::time::{Duration, Instant};

use berth_api::{Object, testing};
use berth_store::{Op, RedbStore, StreamExt, WatchFilter, WatchStart};

const WRITES: usize = 300;
const BATCHES: usize = 50;
const BATCH_SIZE: usize = 20;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let total: Duration = samples.iter().sum();
    println!(
        "{what:<28} n={:<4} mean={:>9.3?} p50={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        samples.len(),
        total / u32::try_from(samples.len()).unwrap_or(u32::MAX),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1],
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temporary.path().to_owned(), Into::into);
    let path = dir.join("write-latency.redb");
    let _ = std::fs::remove_file(&path);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = RedbStore::open(&path)?;

        let mut creates = Vec::with_capacity(WRITES);
        let mut created = Vec::with_capacity(WRITES);
        for i in 0..WRITES {
            let deployment = testing::deployment(&format!("web-{i}")).build();
            let start = Instant::now();
            created.push(store.create(deployment).await?);
            creates.push(start.elapsed());
        }
        report("create (1 object)", creates);

        let mut updates = Vec::with_capacity(WRITES);
        for object in created {
            let Object::Deployment(mut deployment) = object else {
                unreachable!("created deployments")
            };
            deployment.spec.replicas = Some(3);
            let start = Instant::now();
            store.update(deployment).await?;
            updates.push(start.elapsed());
        }
        report("update (1 object)", updates);

        let mut batches = Vec::with_capacity(BATCHES);
        for b in 0..BATCHES {
            let ops = (0..BATCH_SIZE)
                .map(|i| Op::Apply(testing::pod(&format!("pod-{b}-{i}")).build().into()))
                .collect();
            let start = Instant::now();
            store.batch(ops).await?;
            batches.push(start.elapsed());
        }
        report(&format!("batch ({BATCH_SIZE} objects)"), batches);

        let mut watch = store
            .watch(WatchFilter::kind("Service"), WatchStart::Now)
            .await?;
        let mut delivered = Vec::with_capacity(WRITES);
        for i in 0..WRITES {
            let start = Instant::now();
            store
                .create(testing::service(&format!("svc-{i}"), 80).build())
                .await?;
            watch.next().await.ok_or("watch ended")??;
            delivered.push(start.elapsed());
        }
        report("create → watch event", delivered);

        let start = Instant::now();
        let list = store.list("Pod", None, None).await?;
        println!(
            "list {} pods: {:.3?}; file {} KiB",
            list.items.len(),
            start.elapsed(),
            std::fs::metadata(&path)?.len() / 1024
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    std::fs::remove_file(&path)?;
    Ok(())
}
