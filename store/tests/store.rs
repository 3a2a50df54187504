//! The store's behaviour through its public API, on a database in a temporary directory.

use std::collections::BTreeMap;

use berth_api::{
    LabelSelector, Object, ObjectKey,
    apps_v1::{Deployment, DeploymentStatus, ReplicaSet},
    core_v1::{ConfigMap, Namespace, Pod},
    meta::OwnerReference,
    testing,
};
use berth_store::{
    Error, EventType, GoneCause, Op, Options, Outcome, Preconditions, RedbStore, StreamExt, Watch,
    WatchEvent, WatchFilter, WatchStart, key_of,
};
use tempfile::TempDir;

fn open() -> (TempDir, RedbStore) {
    open_with(Options::default())
}

fn open_with(options: Options) -> (TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open_with(dir.path().join("root/store.redb"), options).unwrap();
    (dir, store)
}

fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut map = ConfigMap::default();
    map.metadata.name = Some(name.to_owned());
    map.metadata.namespace = Some(namespace.to_owned());
    map.data = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map
}

fn namespace(name: &str) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    namespace
}

fn labelled_pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    let mut pod = testing::pod(name).build();
    pod.metadata.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pod
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

fn deployment_of(object: Object) -> Deployment {
    let Object::Deployment(deployment) = object else {
        panic!("not a deployment: {object:?}")
    };
    deployment
}

/// The next `n` events of `watch`, failing the test if they take more than 5 s.
async fn next_events(watch: &mut Watch, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
            .await
            .expect("an event within 5 s")
            .expect("the watch goes on")
            .expect("no watch error");
        events.push(event);
    }
    events
}

fn summary(events: &[WatchEvent]) -> Vec<(EventType, String, u64)> {
    events
        .iter()
        .map(|e| (e.event_type, e.object.key().to_string(), e.resource_version))
        .collect()
}

#[tokio::test]
async fn create_assigns_identity_and_reads_back() {
    let (_dir, store) = open();
    // Opening created the default namespace at resourceVersion 1.
    let default = store.get_as::<Namespace>(None, "default").await.unwrap();
    assert_eq!(default.metadata.resource_version.as_deref(), Some("1"));

    let created = store
        .create(testing::deployment("web").build())
        .await
        .unwrap();
    let meta = created.metadata();
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.resource_version.as_deref(), Some("2"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(store.resource_version(), 2);

    assert_eq!(store.get(&created.key()).await.unwrap(), created);
    let typed = store
        .get_as::<Deployment>(Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(Object::from(typed), created);

    let second = store
        .create(testing::deployment("api").build())
        .await
        .unwrap();
    assert_eq!(rv(&second), 3);
    assert_ne!(second.metadata().uid, created.metadata().uid);
}

#[tokio::test]
async fn list_filters_by_namespace_and_labels_and_reports_the_revision() {
    let (_dir, store) = open();
    store.create(namespace("team")).await.unwrap();
    store
        .create(labelled_pod("a", &[("app", "web")]))
        .await
        .unwrap();
    store
        .create(labelled_pod("b", &[("app", "db")]))
        .await
        .unwrap();
    let mut in_team = labelled_pod("c", &[("app", "web")]);
    in_team.metadata.namespace = Some("team".into());
    store.create(in_team).await.unwrap();
    store
        .create(config_map("default", "not-a-pod", &[]))
        .await
        .unwrap();

    let names = |items: &[Object]| {
        items
            .iter()
            .map(|o| o.name().to_owned())
            .collect::<Vec<_>>()
    };
    let all = store.list("Pod", None, None).await.unwrap();
    assert_eq!(names(&all.items), ["a", "b", "c"]);
    assert_eq!(all.resource_version, store.resource_version());
    let default = store.list("Pod", Some("default"), None).await.unwrap();
    assert_eq!(names(&default.items), ["a", "b"]);
    let selector = LabelSelector {
        match_labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
        ..LabelSelector::default()
    };
    let web = store.list("Pod", None, Some(&selector)).await.unwrap();
    assert_eq!(names(&web.items), ["a", "c"]);
    let typed = store
        .list_as::<Pod>(Some("team"), Some(&selector))
        .await
        .unwrap();
    assert_eq!(typed.items.len(), 1);
    assert_eq!(typed.items[0].metadata.name.as_deref(), Some("c"));
    // Cluster-scoped kinds ignore the namespace.
    let namespaces = store.list("Namespace", Some("team"), None).await.unwrap();
    assert_eq!(names(&namespaces.items), ["default", "team"]);

    let err = store.list("Job", None, None).await.unwrap_err();
    assert!(matches!(err, Error::UnknownKind { .. }), "{err}");
}

#[tokio::test]
async fn create_errors_name_the_object_and_map_to_http_codes() {
    let (_dir, store) = open();
    store
        .create(config_map("default", "cfg", &[]))
        .await
        .unwrap();
    let err = store
        .create(config_map("default", "cfg", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }));
    assert_eq!(err.status_code(), 409);
    assert_eq!(err.to_string(), "ConfigMap default/cfg already exists");

    let missing = key_of::<ConfigMap>(None, "nope");
    let err = store.get(&missing).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.status_code(), 404);
    assert_eq!(err.to_string(), "ConfigMap default/nope not found");

    let err = store
        .create(config_map("elsewhere", "cfg", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NamespaceNotFound { .. }), "{err}");
    assert_eq!(err.status_code(), 404);
    assert!(err.to_string().contains("\"elsewhere\""), "{err}");

    let mut with_version = config_map("default", "v", &[]);
    with_version.metadata.resource_version = Some("7".into());
    let err = store.create(with_version).await.unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert!(
        err.to_string().contains("metadata.resourceVersion"),
        "{err}"
    );

    let mut unnamed = config_map("default", "", &[]);
    unnamed.metadata.name = None;
    let err = store.create(unnamed.clone()).await.unwrap_err();
    assert!(err.to_string().contains("metadata.name"), "{err}");
    unnamed.metadata.generate_name = Some("cfg-".into());
    let generated = store.create(unnamed.clone()).await.unwrap();
    let other = store.create(unnamed).await.unwrap();
    assert!(generated.name().starts_with("cfg-") && generated.name().len() == 9);
    assert_ne!(generated.name(), other.name());
}

#[tokio::test]
async fn stale_resource_versions_conflict() {
    let (_dir, store) = open();
    let created = deployment_of(
        store
            .create(testing::deployment("web").build())
            .await
            .unwrap(),
    );

    let mut first = created.clone();
    first.spec.replicas = Some(2);
    let updated = store.update(first).await.unwrap();
    assert_eq!(rv(&updated), 3);

    let mut stale = created.clone();
    stale.spec.replicas = Some(5);
    let err = store.update(stale.clone()).await.unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(err.status_code(), 409);
    let text = err.to_string();
    assert!(
        text.contains("Deployment default/web") && text.contains("2") && text.contains("3"),
        "{text}"
    );
    assert!(
        matches!(&err, Error::Conflict { expected, actual, .. } if expected == "2" && actual == "3")
    );

    // update requires a resourceVersion; apply does not.
    stale.metadata.resource_version = None;
    let err = store.update(stale.clone()).await.unwrap_err();
    assert_eq!(err.status_code(), 422, "{err}");
    let applied = store.apply(stale).await.unwrap();
    assert!(matches!(applied, Outcome::Updated(_)));
    assert_eq!(deployment_of(applied.into_object()).spec.replicas, Some(5));

    // Update of a missing object.
    let mut ghost = testing::deployment("ghost").build();
    ghost.metadata.resource_version = Some("3".into());
    assert!(store.update(ghost).await.unwrap_err().is_not_found());

    // Delete preconditions.
    let key = created.metadata.clone();
    let key = key_of::<Deployment>(key.namespace.as_deref(), key.name());
    let err = store
        .delete(
            &key,
            Preconditions {
                resource_version: Some("2".into()),
                ..Preconditions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let err = store
        .delete(
            &key,
            Preconditions {
                uid: Some("not-the-uid".into()),
                ..Preconditions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 409);
    assert!(matches!(err, Error::UidPrecondition { .. }));
    let deleted = store
        .delete(
            &key,
            Preconditions {
                uid: created.metadata.uid.clone(),
                resource_version: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(deleted, Outcome::Deleted(_)));
    assert!(store.get(&key).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn generation_follows_the_desired_state_only() {
    let (_dir, store) = open();
    let created = deployment_of(
        store
            .create(testing::deployment("web").build())
            .await
            .unwrap(),
    );
    assert_eq!(created.metadata.generation, Some(1));

    // Labels only: new resourceVersion, same generation.
    let mut relabelled = created.clone();
    relabelled
        .metadata
        .labels
        .insert("tier".into(), "edge".into());
    let relabelled = deployment_of(store.update(relabelled).await.unwrap());
    assert_eq!(relabelled.metadata.generation, Some(1));
    assert!(rv(&relabelled.clone().into()) > rv(&created.clone().into()));

    // Spec: generation 2.
    let mut scaled = relabelled.clone();
    scaled.spec.replicas = Some(3);
    let scaled = deployment_of(store.update(scaled).await.unwrap());
    assert_eq!(scaled.metadata.generation, Some(2));

    // Status through /status: generation stays, spec is ignored.
    let mut reported = scaled.clone();
    reported.status = Some(DeploymentStatus {
        observed_generation: Some(2),
        replicas: 3,
        ..DeploymentStatus::default()
    });
    reported.spec.replicas = Some(100);
    let reported = deployment_of(store.update_status(reported).await.unwrap());
    assert_eq!(reported.metadata.generation, Some(2));
    assert_eq!(reported.spec.replicas, Some(3));
    assert_eq!(reported.status.as_ref().unwrap().replicas, 3);

    // A spec update keeps the stored status whatever the caller sent.
    let mut rescaled = reported.clone();
    rescaled.spec.replicas = Some(4);
    rescaled.status = None;
    let rescaled = deployment_of(store.update(rescaled).await.unwrap());
    assert_eq!(rescaled.metadata.generation, Some(3));
    assert_eq!(rescaled.status.as_ref().unwrap().replicas, 3);

    // Server-owned metadata cannot be changed by an update.
    let mut forged = rescaled.clone();
    forged.metadata.uid = Some("forged".into());
    forged.metadata.generation = Some(42);
    let unchanged = store.apply(forged).await.unwrap();
    assert!(matches!(unchanged, Outcome::Unchanged(_)), "{unchanged:?}");
    assert_eq!(deployment_of(unchanged.into_object()), rescaled);

    // A write that changes nothing is not written: same resourceVersion.
    let before = store.resource_version();
    let same = store.update(rescaled.clone()).await.unwrap();
    assert_eq!(deployment_of(same), rescaled);
    assert_eq!(store.resource_version(), before);

    // Kinds without a status subresource.
    let map = store
        .create(config_map("default", "cfg", &[]))
        .await
        .unwrap();
    let err = store.update_status(map).await.unwrap_err();
    assert!(
        matches!(err, Error::NoStatus { kind: "ConfigMap" }),
        "{err}"
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_cleared() {
    let (_dir, store) = open();
    let mut map = config_map("default", "held", &[("a", "1")]);
    map.metadata.finalizers = vec!["berth.dev/cleanup".into()];
    let created = store.create(map).await.unwrap();
    let key = created.key();

    let Outcome::Terminating(terminating) =
        store.delete(&key, Preconditions::default()).await.unwrap()
    else {
        panic!("an object with finalizers is marked, not deleted");
    };
    assert!(terminating.metadata().deletion_timestamp.is_some());
    assert_eq!(terminating.metadata().generation, Some(2));
    assert_eq!(store.get(&key).await.unwrap(), terminating);
    // Deleting again changes nothing.
    let again = store.delete(&key, Preconditions::default()).await.unwrap();
    assert_eq!(again, Outcome::Terminating(terminating.clone()));
    // An update cannot clear the deletionTimestamp.
    let mut revive = terminating.clone();
    revive.metadata_mut().deletion_timestamp = None;
    let Object::ConfigMap(map) = &mut revive else {
        unreachable!()
    };
    map.data.insert("b".into(), "2".into());
    let revived = store.update(revive).await.unwrap();
    assert!(revived.metadata().deletion_timestamp.is_some());

    let mut cleared = revived.clone();
    cleared.metadata_mut().finalizers.clear();
    let Outcome::Deleted(last) = store.apply(cleared).await.unwrap() else {
        panic!("removing the last finalizer deletes");
    };
    assert!(last.metadata().finalizers.is_empty());
    assert!(store.get(&key).await.unwrap_err().is_not_found());

    // A terminating namespace accepts no new objects.
    let mut team = namespace("team");
    team.metadata.finalizers = vec!["kubernetes".into()];
    store.create(team).await.unwrap();
    store
        .delete(&key_of::<Namespace>(None, "team"), Preconditions::default())
        .await
        .unwrap();
    let err = store
        .create(config_map("team", "late", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NamespaceTerminating { .. }), "{err}");
    assert_eq!(err.status_code(), 403);

    let err = store
        .delete(
            &key_of::<Namespace>(None, "default"),
            Preconditions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 403);
    assert_eq!(
        err.to_string(),
        "Namespace default: the default namespace cannot be deleted"
    );
}

#[tokio::test]
async fn a_batch_applies_all_or_nothing() {
    let (_dir, store) = open();
    let existing = store
        .create(config_map("default", "old", &[]))
        .await
        .unwrap();
    let before = store.resource_version();
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::Now)
        .await
        .unwrap();

    let mut stale = existing.clone();
    stale.metadata_mut().resource_version = Some("1".into());
    let mut in_new_namespace = config_map("team", "cfg", &[]);
    in_new_namespace
        .metadata
        .labels
        .insert("x".into(), "y".into());
    let err = store
        .batch(vec![
            Op::Create(namespace("team").into()),
            Op::Create(in_new_namespace.clone().into()),
            Op::Update(stale),
            Op::Create(config_map("default", "never", &[]).into()),
        ])
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(store.resource_version(), before);
    assert!(
        store
            .get(&key_of::<Namespace>(None, "team"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .list("ConfigMap", Some("team"), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The same batch without the stale update commits as a whole: one revision per change, the
    // namespace created earlier in the batch is visible to the objects after it.
    let outcomes = store
        .batch(vec![
            Op::Create(namespace("team").into()),
            Op::Create(in_new_namespace.into()),
            Op::Apply(config_map("default", "old", &[("k", "v")]).into()),
            Op::Delete {
                key: key_of::<ConfigMap>(None, "old"),
                preconditions: Preconditions::default(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes.iter().map(|o| rv(o.object())).collect::<Vec<_>>(),
        [before + 1, before + 2, before + 3, before + 4]
    );
    // The first events anyone sees are this batch's, none of the failed one.
    let events = next_events(&mut watch, 4).await;
    assert_eq!(
        summary(&events),
        [
            (EventType::Added, "Namespace team".into(), before + 1),
            (EventType::Added, "ConfigMap team/cfg".into(), before + 2),
            (
                EventType::Modified,
                "ConfigMap default/old".into(),
                before + 3
            ),
            (
                EventType::Deleted,
                "ConfigMap default/old".into(),
                before + 4
            ),
        ]
    );
}

#[tokio::test]
async fn guaranteed_update_retries_conflicts_until_every_change_lands() {
    let (_dir, store) = open();
    let created = store
        .create(testing::deployment("web").with_replicas(0).build())
        .await
        .unwrap();
    let key = created.key();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                store
                    .guaranteed_update(&key, |object| {
                        let mut deployment = deployment_of(object);
                        deployment.spec.replicas = Some(deployment.spec.replicas.unwrap() + 1);
                        Ok::<_, Error>(Some(deployment.into()))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let done = deployment_of(store.get(&key).await.unwrap());
    assert_eq!(done.spec.replicas, Some(40));
    assert_eq!(done.metadata.generation, Some(41));

    // None leaves the object alone; errors of the closure come back as they are.
    let unchanged = store
        .guaranteed_update(&key, |_| Ok::<_, Error>(None))
        .await
        .unwrap();
    assert_eq!(deployment_of(unchanged), done);
    let status = store
        .guaranteed_update_status(&key, |object| {
            let mut deployment = deployment_of(object);
            deployment.status = Some(DeploymentStatus {
                replicas: 40,
                ..DeploymentStatus::default()
            });
            Ok::<_, Error>(Some(deployment.into()))
        })
        .await
        .unwrap();
    assert_eq!(deployment_of(status).metadata.generation, Some(41));
    let err = store
        .guaranteed_update(&key, |object| {
            let mut renamed = object;
            renamed.metadata_mut().name = Some("other".into());
            Ok::<_, Error>(Some(renamed))
        })
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 422, "{err}");
    let missing = key_of::<Deployment>(None, "missing");
    let err = store
        .guaranteed_update(&missing, |o| Ok::<_, Error>(Some(o)))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn dependents_are_indexed_by_owner_uid() {
    let (_dir, store) = open();
    let owner = store.create(testing::replica_set("web", 2)).await.unwrap();
    let owner_uid = owner.metadata().uid.clone().unwrap();
    let reference = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web".into(),
        uid: owner_uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    for name in ["web-a", "web-b"] {
        let mut pod = testing::pod(name).build();
        pod.metadata.owner_references = vec![reference.clone()];
        store.create(pod).await.unwrap();
    }
    store.create(testing::pod("orphan").build()).await.unwrap();
    let names = |objects: Vec<Object>| {
        let mut names: Vec<_> = objects.iter().map(|o| o.name().to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(
        names(store.dependents(&owner_uid).await.unwrap()),
        ["web-a", "web-b"]
    );

    // Releasing one (ownerReferences removed) and deleting the other update the index.
    let mut released = store.get(&key_of::<Pod>(None, "web-a")).await.unwrap();
    released.metadata_mut().owner_references.clear();
    store.update(released).await.unwrap();
    store
        .delete(&key_of::<Pod>(None, "web-b"), Preconditions::default())
        .await
        .unwrap();
    assert!(store.dependents(&owner_uid).await.unwrap().is_empty());
    let _ = ReplicaSet::default();
}

#[tokio::test]
async fn watch_from_now_sees_later_changes_in_order_across_kinds() {
    let (_dir, store) = open();
    store
        .create(config_map("default", "before", &[]))
        .await
        .unwrap();
    let mut all = store
        .watch(WatchFilter::all(), WatchStart::Now)
        .await
        .unwrap();
    let mut pods = store
        .watch(WatchFilter::kind("Pod"), WatchStart::Now)
        .await
        .unwrap();
    let start = store.resource_version();

    let pod = store.create(testing::pod("p").build()).await.unwrap();
    store.create(config_map("default", "c", &[])).await.unwrap();
    store
        .create(testing::deployment("d").build())
        .await
        .unwrap();
    let mut labelled = pod.clone();
    labelled
        .metadata_mut()
        .labels
        .insert("a".into(), "b".into());
    store.update(labelled).await.unwrap();
    store
        .delete(&pod.key(), Preconditions::default())
        .await
        .unwrap();

    let events = next_events(&mut all, 5).await;
    assert_eq!(
        summary(&events),
        [
            (EventType::Added, "Pod default/p".into(), start + 1),
            (EventType::Added, "ConfigMap default/c".into(), start + 2),
            (EventType::Added, "Deployment default/d".into(), start + 3),
            (EventType::Modified, "Pod default/p".into(), start + 4),
            (EventType::Deleted, "Pod default/p".into(), start + 5),
        ]
    );
    assert_eq!(rv(&events[4].object), start + 5);
    assert_eq!(all.resource_version(), start + 5);
    let pod_events = next_events(&mut pods, 3).await;
    assert_eq!(
        pod_events
            .iter()
            .map(|e| e.resource_version)
            .collect::<Vec<_>>(),
        [start + 1, start + 4, start + 5]
    );
    assert_eq!(
        serde_json::to_value(&pod_events[2]).unwrap()["type"],
        "DELETED"
    );
}

#[tokio::test]
async fn watch_from_an_old_version_replays_the_change_log_then_goes_live() {
    let (_dir, store) = open();
    store.create(namespace("team")).await.unwrap();
    let list = store.list("ConfigMap", None, None).await.unwrap();
    store.create(config_map("default", "a", &[])).await.unwrap();
    store.create(config_map("team", "b", &[])).await.unwrap();
    store.create(testing::pod("ignored").build()).await.unwrap();

    let mut watch = store
        .watch(
            WatchFilter::kind("ConfigMap"),
            WatchStart::After(list.resource_version),
        )
        .await
        .unwrap();
    let mut team = store
        .watch(
            WatchFilter::kind("ConfigMap").in_namespace("team"),
            WatchStart::After(list.resource_version),
        )
        .await
        .unwrap();
    store.create(config_map("team", "c", &[])).await.unwrap();
    let base = list.resource_version;
    let events = next_events(&mut watch, 3).await;
    assert_eq!(
        summary(&events),
        [
            (EventType::Added, "ConfigMap default/a".into(), base + 1),
            (EventType::Added, "ConfigMap team/b".into(), base + 2),
            (EventType::Added, "ConfigMap team/c".into(), base + 4),
        ]
    );
    let mut one = store
        .watch(
            WatchFilter::kind("ConfigMap")
                .in_namespace("team")
                .named("c"),
            WatchStart::After(list.resource_version),
        )
        .await
        .unwrap();
    assert_eq!(summary(&next_events(&mut one, 1).await)[0].2, base + 4);
    let team_events = next_events(&mut team, 2).await;
    assert_eq!(
        team_events
            .iter()
            .map(|e| e.object.name().to_owned())
            .collect::<Vec<_>>(),
        ["b", "c"]
    );

    // The initial state: ADDED for what exists, then changes.
    let mut initial = store
        .watch(WatchFilter::kind("ConfigMap"), WatchStart::InitialState)
        .await
        .unwrap();
    store
        .delete(&key_of::<ConfigMap>(None, "a"), Preconditions::default())
        .await
        .unwrap();
    let events = next_events(&mut initial, 4).await;
    assert_eq!(
        summary(&events)
            .into_iter()
            .map(|(t, k, _)| (t, k))
            .collect::<Vec<_>>(),
        [
            (EventType::Added, "ConfigMap default/a".into()),
            (EventType::Added, "ConfigMap team/b".into()),
            (EventType::Added, "ConfigMap team/c".into()),
            (EventType::Deleted, "ConfigMap default/a".into()),
        ]
    );
}

#[tokio::test]
async fn watching_a_compacted_version_is_gone() {
    let (_dir, store) = open_with(Options {
        retained_events: 3,
        ..Options::default()
    });
    for i in 0..10 {
        store
            .create(config_map("default", &format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let current = store.resource_version();
    assert_eq!(current, 11);
    let compaction = store.compact().await.unwrap();
    assert_eq!(compaction.compacted, 8);
    assert_eq!(compaction.removed, 8);
    // Nothing more to drop.
    assert_eq!(store.compact().await.unwrap().removed, 0);

    let err = store
        .watch(WatchFilter::all(), WatchStart::After(5))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 410);
    assert_eq!(err.reason(), "Expired");
    assert!(matches!(
        err,
        Error::Gone {
            resource_version: 5,
            cause: GoneCause::Compacted { compacted: 8 }
        }
    ));
    assert!(
        err.to_string().starts_with("too old resource version: 5"),
        "{err}"
    );

    // From the compaction point on, everything is still there.
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::After(8))
        .await
        .unwrap();
    let events = next_events(&mut watch, 3).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e.resource_version)
            .collect::<Vec<_>>(),
        [9, 10, 11]
    );
}

#[tokio::test]
async fn background_compaction_keeps_the_retained_events() {
    let (_dir, store) = open_with(Options {
        retained_events: 2,
        ..Options::default()
    });
    let compactor = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .run_compaction(std::time::Duration::from_millis(10))
                .await
        }
    });
    for i in 0..5 {
        store
            .create(config_map("default", &format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let err = loop {
        match store.watch(WatchFilter::all(), WatchStart::After(3)).await {
            Err(err) => break err,
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no compaction in 5 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    compactor.abort();
    assert!(matches!(
        err,
        Error::Gone {
            resource_version: 3,
            cause: GoneCause::Compacted { compacted: 4 }
        }
    ));
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::After(4))
        .await
        .unwrap();
    assert_eq!(next_events(&mut watch, 2).await[1].resource_version, 6);
}

#[tokio::test]
async fn a_watcher_that_falls_behind_gets_gone_instead_of_a_gap() {
    let (_dir, store) = open_with(Options {
        feed_capacity: 4,
        ..Options::default()
    });
    let mut slow = store
        .watch(WatchFilter::all(), WatchStart::Now)
        .await
        .unwrap();
    let start = store.resource_version();
    for i in 0..10 {
        store
            .create(config_map("default", &format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let err = loop {
        match slow
            .next()
            .await
            .expect("the watch reports the lag before ending")
        {
            Ok(event) => seen.push(event.resource_version),
            Err(err) => break err,
        }
    };
    assert!(
        seen.is_empty(),
        "no event before the gap is reported: {seen:?}"
    );
    assert_eq!(err.status_code(), 410);
    assert!(
        matches!(err, Error::Gone { resource_version, cause: GoneCause::Lagged { missed: 6 } } if resource_version == start),
        "{err:?}"
    );
    assert!(slow.next().await.is_none(), "the watch ends after Gone");

    // The client relists and watches from the list's version: nothing is lost.
    let list = store.list("ConfigMap", None, None).await.unwrap();
    assert_eq!(list.items.len(), 10);
    let mut resumed = store
        .watch(WatchFilter::all(), WatchStart::After(start))
        .await
        .unwrap();
    let events = next_events(&mut resumed, 10).await;
    assert_eq!(
        events.last().unwrap().resource_version,
        list.resource_version
    );
}

#[tokio::test]
async fn reopening_keeps_objects_the_change_log_and_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (created, revision) = {
        let store = RedbStore::open(&path).unwrap();
        let created = store
            .create(testing::deployment("web").build())
            .await
            .unwrap();
        store
            .create(config_map("default", "cfg", &[]))
            .await
            .unwrap();
        (created, store.resource_version())
    };
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.resource_version(), revision);
    // One daemon per root: the file is locked while open.
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    assert_eq!(store.get(&created.key()).await.unwrap(), created);
    assert_eq!(
        store
            .list("Namespace", None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::After(rv(&created)))
        .await
        .unwrap();
    let next = store
        .create(config_map("default", "after", &[]))
        .await
        .unwrap();
    assert_eq!(rv(&next), revision + 1);
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        summary(&events),
        [
            (EventType::Added, "ConfigMap default/cfg".into(), revision),
            (
                EventType::Added,
                "ConfigMap default/after".into(),
                revision + 1
            ),
        ]
    );
    let _: ObjectKey = created.key();
}

#[tokio::test]
async fn an_in_memory_store_behaves_the_same() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    assert_eq!(store.path(), std::path::Path::new("<memory>"));
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::InitialState)
        .await
        .unwrap();
    let created = store
        .create(testing::deployment("web").build())
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.metadata_mut().resource_version = Some("1".into());
    assert!(store.update(stale).await.unwrap_err().is_conflict());
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        summary(&events),
        [
            (EventType::Added, "Namespace default".into(), 1),
            (EventType::Added, "Deployment default/web".into(), 2),
        ]
    );
    // Another in-memory store is another store.
    let other = RedbStore::open_in_memory(Options::default()).unwrap();
    assert!(other.get(&created.key()).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_publish_every_revision_once_and_in_order() {
    let (_dir, store) = open();
    let start = store.resource_version();
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::Now)
        .await
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .create(config_map("default", &format!("w{w}-{i}"), &[]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let events = next_events(&mut watch, 40).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e.resource_version)
            .collect::<Vec<_>>(),
        (start + 1..=start + 40).collect::<Vec<_>>()
    );
    // Replaying the change log gives the same sequence.
    let mut replay = store
        .watch(WatchFilter::all(), WatchStart::After(start))
        .await
        .unwrap();
    assert_eq!(next_events(&mut replay, 40).await, events);
}
