//! The controller runtime with hand-written reconcilers: queueing, requeues, backoff, relists.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use berth_api::{Object, apps_v1::ReplicaSet, core_v1::ConfigMap};
use berth_controller::{Action, Backoff, Controller};
use berth_store::{Options, RedbStore, StreamExt, WatchFilter, WatchStart};
use tokio::time::Instant;

#[derive(Default)]
struct Record {
    in_flight: HashMap<String, usize>,
    max_in_flight: usize,
    runs: Vec<(Instant, String, String)>,
}

type Shared = Arc<Mutex<Record>>;

/// A reconciler that takes one second and records what it saw.
async fn slow_reconcile(
    rs: Arc<ReplicaSet>,
    record: Arc<Shared>,
) -> Result<Action, std::io::Error> {
    let name = rs.metadata.name().to_owned();
    {
        let mut r = record.lock().unwrap();
        let n = r.in_flight.entry(name.clone()).or_default();
        *n += 1;
        let n = *n;
        r.max_in_flight = r.max_in_flight.max(n);
        let version = rs.metadata.resource_version.clone().unwrap_or_default();
        r.runs.push((Instant::now(), name.clone(), version));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    *record.lock().unwrap().in_flight.get_mut(&name).unwrap() -= 1;
    Ok(Action::await_change())
}

fn never(_: Arc<ReplicaSet>, _: &std::io::Error, _: Arc<Shared>) -> Action {
    Action::await_change()
}

async fn scale(store: &RedbStore, name: &str, replicas: i32) -> String {
    let key = berth_store::key_of::<ReplicaSet>(Some("default"), name);
    let written = store
        .guaranteed_update(&key, |object| {
            let Object::ReplicaSet(mut rs) = object else {
                unreachable!()
            };
            rs.spec.replicas = Some(replicas);
            Ok::<_, berth_store::Error>(Some(rs.into()))
        })
        .await
        .unwrap();
    written.metadata().resource_version.clone().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_key_never_runs_twice_at_once_and_runs_again_after_a_change() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store
        .create(berth_api::testing::replica_set("a", 1))
        .await
        .unwrap();
    store
        .create(berth_api::testing::replica_set("b", 1))
        .await
        .unwrap();
    let record: Arc<Shared> = Arc::default();
    let controller = tokio::spawn(Controller::<ReplicaSet>::new(store.clone()).run(
        slow_reconcile,
        never,
        Arc::clone(&record),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut last = String::new();
    for replicas in 2..22 {
        last = scale(&store, "a", replicas).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    controller.abort();
    let record = record.lock().unwrap();
    assert_eq!(record.max_in_flight, 1, "one reconcile per key at a time");
    let runs_of_a: Vec<&(Instant, String, String)> =
        record.runs.iter().filter(|(_, n, _)| n == "a").collect();
    assert_eq!(
        runs_of_a.last().unwrap().2,
        last,
        "the last run saw the last change"
    );
    assert!(
        runs_of_a.len() < 20,
        "triggers during a run are merged: {} runs for 20 changes",
        runs_of_a.len()
    );
    assert!(
        record.runs.iter().any(|(_, n, _)| n == "b"),
        "every object is reconciled at start"
    );
    for pair in runs_of_a.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_secs(1),
            "runs do not overlap"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn actions_requeue_after_their_delay_and_errors_back_off() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store
        .create(berth_api::testing::replica_set("periodic", 1))
        .await
        .unwrap();
    store
        .create(berth_api::testing::replica_set("failing", 1))
        .await
        .unwrap();
    let runs: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let start = Instant::now();
    let controller = Controller::<ReplicaSet>::new(store.clone()).with_backoff(Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
    });
    let task = tokio::spawn(controller.run(
        |rs: Arc<ReplicaSet>, runs: Arc<Mutex<Vec<(Instant, String)>>>| async move {
            let name = rs.metadata.name().to_owned();
            runs.lock().unwrap().push((Instant::now(), name.clone()));
            if name == "failing" {
                Err(std::io::Error::other("scripted failure"))
            } else {
                Ok(Action::requeue(Duration::from_secs(10)))
            }
        },
        |_, _, _| Action::backoff(),
        Arc::clone(&runs),
    ));
    tokio::time::sleep(Duration::from_millis(35_500)).await;
    task.abort();
    let runs = runs.lock().unwrap();
    let seconds = |name: &str| -> Vec<u64> {
        runs.iter()
            .filter(|(_, n)| n == name)
            .map(|(at, _)| (*at - start).as_secs())
            .collect()
    };
    assert_eq!(seconds("periodic"), [0, 10, 20, 30]);
    // Backoff 1, 2, 4, then capped at 4.
    assert_eq!(seconds("failing"), [0, 1, 3, 7, 11, 15, 19, 23, 27, 31, 35]);
}

/// Creates ConfigMaps in one batch: their events reach every watcher at once, more than the
/// feed holds.
async fn noise(store: &RedbStore, range: std::ops::Range<usize>) {
    let ops = range
        .map(|i| {
            let mut config = ConfigMap::default();
            config.metadata.name = Some(format!("noise-{i}"));
            berth_store::Op::Create(config.into())
        })
        .collect();
    store.batch(ops).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn controllers_relist_when_they_fall_behind_the_watch_feed() {
    let store = RedbStore::open_in_memory(Options {
        feed_capacity: 4,
        ..Options::default()
    })
    .unwrap();
    // A watcher that does not read falls behind and is told so.
    let mut lagging = store
        .watch(WatchFilter::all(), WatchStart::Now)
        .await
        .unwrap();
    let cluster = support::Cluster::from_store(store.clone()).with_controllers(|k| k);
    noise(&store, 0..40).await;
    store
        .create(berth_api::testing::replica_set("web", 6))
        .await
        .unwrap();
    noise(&store, 40..80).await;
    let mut gone = false;
    while let Some(event) = lagging.next().await {
        if event.is_err() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the feed capacity is small enough to lag");
    cluster
        .eventually(Duration::from_secs(60), "6 ready pods", || async {
            let rs = store
                .get_as::<ReplicaSet>(Some("default"), "web")
                .await
                .unwrap();
            cluster.pods().await.len() == 6 && rs.status.is_some_and(|s| s.ready_replicas == 6)
        })
        .await;
}
