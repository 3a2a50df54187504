//! `kill -9` of a process that is writing: every write it acknowledged survives, no batch is
//! half-applied, and the change log has no hole.
//!
//! The test re-executes its own binary to run `crash_child_writer` (ignored in normal runs) as a
//! child that writes in a loop and prints one `ack` line per acknowledged write, kills it with
//! SIGKILL at a random moment, reopens the store and checks it. Three rounds on the same file.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{BuildHasher, RandomState},
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use berth_api::{Object, core_v1::ConfigMap};
use berth_store::{
    Error, Op, Preconditions, RedbStore, StreamExt, WatchFilter, WatchStart, key_of,
};

const CHILD_DB: &str = "BERTH_STORE_CRASH_CHILD_DB";
const CHILD_ROUND: &str = "BERTH_STORE_CRASH_CHILD_ROUND";
const BATCH: usize = 3;

fn config_map(name: &str, data: &[(&str, String)]) -> ConfigMap {
    let mut map = ConfigMap::default();
    map.metadata.name = Some(name.to_owned());
    map.data = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    map
}

fn rv(object: &Object) -> u64 {
    object
        .metadata()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// The child: writes until killed. Prints `ack create NAME RV`, `ack batch I RV` (objects
/// `r{round}-b{I}-{0..3}`), `ack counter VALUE RV` after each acknowledged write.
#[test]
#[ignore = "run by `kill_9_loses_nothing_acknowledged` in a child process"]
fn crash_child_writer() {
    let path = std::env::var(CHILD_DB).expect("BERTH_STORE_CRASH_CHILD_DB names the database");
    let round = std::env::var(CHILD_ROUND).expect("BERTH_STORE_CRASH_CHILD_ROUND is set");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(&path).unwrap();
        let counter = key_of::<ConfigMap>(None, "counter");
        if let Err(err) = store
            .create(config_map("counter", &[("n", "0".into())]))
            .await
        {
            assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        }
        let mut out = std::io::stdout();
        for i in 0u64.. {
            let line = match i % 3 {
                0 => {
                    let name = format!("r{round}-c{i}");
                    let created = store
                        .create(config_map(&name, &[("i", i.to_string())]))
                        .await
                        .unwrap();
                    format!("ack create {name} {}", rv(&created))
                }
                1 => {
                    let ops = (0..BATCH)
                        .map(|j| Op::Create(config_map(&format!("r{round}-b{i}-{j}"), &[]).into()))
                        .collect();
                    let outcomes = store.batch(ops).await.unwrap();
                    format!(
                        "ack batch r{round}-b{i} {}",
                        rv(outcomes[BATCH - 1].object())
                    )
                }
                _ => {
                    let updated = store
                        .guaranteed_update(&counter, |object| {
                            let Object::ConfigMap(mut map) = object else {
                                unreachable!("counter is a ConfigMap")
                            };
                            let n: u64 = map.data["n"].parse().unwrap();
                            map.data.insert("n".into(), (n + 1).to_string());
                            Ok::<_, Error>(Some(map.into()))
                        })
                        .await
                        .unwrap();
                    let Object::ConfigMap(map) = &updated else {
                        unreachable!()
                    };
                    format!("ack counter {} {}", map.data["n"], rv(&updated))
                }
            };
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Acknowledgements read from one child.
#[derive(Default)]
struct Acks {
    created: BTreeMap<String, u64>,
    batches: BTreeMap<String, u64>,
    counter: u64,
    max_rv: u64,
}

fn run_child_and_kill(exe: &Path, db: &Path, round: u32, acks: &mut Acks) -> usize {
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                // A line cut by the kill has no newline: it was not acknowledged.
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with(b"\n") => {
                    if sender
                        .send(String::from_utf8_lossy(&line).trim_end().to_owned())
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    // Wait for the first acknowledgement, then kill at a random moment 20–320 ms later.
    let first = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledges a write within 60 s");
    let delay = Duration::from_millis(20 + RandomState::new().hash_one(round) % 300);
    let deadline = Instant::now() + delay;
    let mut lines = vec![first];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(line) = receiver.recv_timeout(left) {
            lines.push(line);
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(receiver.try_iter());

    for line in lines.iter().filter(|l| l.starts_with("ack ")) {
        let fields: Vec<&str> = line.split(' ').collect();
        let rv: u64 = fields[3].parse().unwrap();
        acks.max_rv = acks.max_rv.max(rv);
        match fields[1] {
            "create" => {
                acks.created.insert(fields[2].to_owned(), rv);
            }
            "batch" => {
                acks.batches.insert(fields[2].to_owned(), rv);
            }
            "counter" => acks.counter = acks.counter.max(fields[2].parse().unwrap()),
            other => panic!("unexpected ack {other}: {line}"),
        }
    }
    lines.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.redb");
    let exe = std::env::current_exe().unwrap();
    let mut acks = Acks::default();
    for round in 0..3 {
        let acked = tokio::task::block_in_place(|| run_child_and_kill(&exe, &db, round, &mut acks));
        assert!(acked > 0, "round {round}: the child acknowledged nothing");
    }
    assert!(!acks.created.is_empty() && !acks.batches.is_empty());

    let store = RedbStore::open(&db).unwrap();
    let revision = store.resource_version();
    assert!(
        revision >= acks.max_rv,
        "revision {revision} < acknowledged {}",
        acks.max_rv
    );

    // Every acknowledged create is there, with the resourceVersion it was acknowledged with.
    for (name, acked_rv) in &acks.created {
        let object = store.get(&key_of::<ConfigMap>(None, name)).await.unwrap();
        assert_eq!(rv(&object), *acked_rv, "{name}");
    }
    // Every acknowledged batch is there; no batch is partly there.
    let maps = store.list("ConfigMap", None, None).await.unwrap();
    assert_eq!(maps.resource_version, revision);
    let mut batch_members: BTreeMap<String, usize> = BTreeMap::new();
    for map in &maps.items {
        if let Some((batch, _)) = map.name().rsplit_once('-')
            && batch.contains("-b")
        {
            *batch_members.entry(batch.to_owned()).or_default() += 1;
        }
    }
    for (batch, members) in &batch_members {
        assert_eq!(*members, BATCH, "batch {batch} is partly applied");
    }
    for batch in acks.batches.keys() {
        assert!(
            batch_members.contains_key(batch),
            "acknowledged batch {batch} lost"
        );
    }
    // The counter is at least what was acknowledged (an unacknowledged increment may have landed).
    let Object::ConfigMap(counter) = store
        .get(&key_of::<ConfigMap>(None, "counter"))
        .await
        .unwrap()
    else {
        unreachable!()
    };
    let n: u64 = counter.data["n"].parse().unwrap();
    assert!(
        n >= acks.counter,
        "counter {n} < acknowledged {}",
        acks.counter
    );

    // resourceVersions are unique, and the change log has every revision from 1 on.
    let mut seen = BTreeSet::new();
    for object in maps.items.iter() {
        assert!(seen.insert(rv(object)), "duplicate resourceVersion");
        assert!(rv(object) <= revision);
    }
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::After(0))
        .await
        .unwrap();
    for expected in 1..=revision {
        let event = watch.next().await.unwrap().unwrap();
        assert_eq!(event.resource_version, expected, "hole in the change log");
    }

    // The store goes on from there.
    let next = store.create(config_map("after-crash", &[])).await.unwrap();
    assert_eq!(rv(&next), revision + 1);
    store
        .delete(&next.key(), Preconditions::default())
        .await
        .unwrap();
    eprintln!(
        "crash test: {} creates, {} batches, counter {n}, revision {revision} after 3 kills",
        acks.created.len(),
        acks.batches.len()
    );
}
