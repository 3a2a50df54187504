//! The ReplicaSet controller against an in-memory store and a FakeKubelet.

mod support;

use std::time::Duration;

use berth_api::{Object, apps_v1::ReplicaSet};
use berth_controller::{pods, testing::Readiness};
use support::Cluster;

const MINUTE: Duration = Duration::from_secs(60);

async fn scale(cluster: &Cluster, name: &str, replicas: i32) {
    let key = berth_store::key_of::<ReplicaSet>(Some("default"), name);
    cluster
        .store
        .guaranteed_update(&key, |object| {
            let Object::ReplicaSet(mut rs) = object else {
                unreachable!()
            };
            rs.spec.replicas = Some(replicas);
            Ok::<_, berth_store::Error>(Some(rs.into()))
        })
        .await
        .unwrap();
}

async fn status_matches(cluster: &Cluster, name: &str, replicas: i32, ready: i32) -> bool {
    let rs = cluster
        .store
        .get_as::<ReplicaSet>(Some("default"), name)
        .await
        .unwrap();
    let status = rs.status.unwrap_or_default();
    status.replicas == replicas
        && status.ready_replicas == ready
        && status.available_replicas == ready
        && status.fully_labeled_replicas == replicas
        && status.observed_generation == rs.metadata.generation
}

#[tokio::test(start_paused = true)]
async fn creates_owned_pods_and_scales_down_newest_unready_first() {
    let cluster =
        Cluster::start(|k| k.ready_after(Readiness::After(Duration::from_secs(30)))).await;
    let rs = cluster
        .store
        .create(berth_api::testing::replica_set("web", 3))
        .await
        .unwrap();
    let uid = rs.metadata().uid.clone().unwrap();
    cluster
        .eventually(MINUTE, "3 ready pods", || {
            status_matches(&cluster, "web", 3, 3)
        })
        .await;
    let pods = cluster.pods().await;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let name = pod.metadata.name();
        let suffix = name.strip_prefix("web-").expect("named <rs>-<suffix>");
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let owner = pods::controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", uid.as_str())
        );
        assert_eq!(pod.metadata.labels["app"], "web");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    }
    let originals: Vec<String> = pods.iter().map(|p| p.metadata.name().to_owned()).collect();

    // Two more, not ready for 30s: scaling back to 3 deletes those two, not the ready ones.
    scale(&cluster, "web", 5).await;
    cluster
        .eventually(MINUTE, "5 pods", || async {
            cluster.pods().await.len() == 5
        })
        .await;
    scale(&cluster, "web", 3).await;
    cluster
        .eventually(MINUTE, "3 pods", || status_matches(&cluster, "web", 3, 3))
        .await;
    let mut left: Vec<String> = cluster
        .pods()
        .await
        .iter()
        .map(|p| p.metadata.name().to_owned())
        .collect();
    left.sort();
    let mut expected = originals.clone();
    expected.sort();
    assert_eq!(left, expected);

    scale(&cluster, "web", 0).await;
    cluster
        .eventually(MINUTE, "no pods", || async {
            cluster.pods().await.is_empty()
        })
        .await;
    assert!(status_matches(&cluster, "web", 0, 0).await);
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphans_and_replaces_deleted_pods() {
    let cluster = Cluster::store_only();
    let mut orphan = berth_api::testing::pod("orphan").build();
    orphan.metadata.labels.insert("app".into(), "web".into());
    cluster.store.create(orphan).await.unwrap();
    let mut stranger = berth_api::testing::pod("stranger").build();
    stranger
        .metadata
        .labels
        .insert("app".into(), "other".into());
    cluster.store.create(stranger).await.unwrap();
    let cluster = cluster.with_controllers(|k| k);
    cluster
        .store
        .create(berth_api::testing::replica_set("web", 2))
        .await
        .unwrap();
    cluster
        .eventually(MINUTE, "2 ready", || status_matches(&cluster, "web", 2, 2))
        .await;
    let pods = cluster.pods().await;
    assert_eq!(
        pods.len(),
        3,
        "the orphan counts, the stranger is left alone"
    );
    let orphan = pods.iter().find(|p| p.metadata.name() == "orphan").unwrap();
    assert_eq!(pods::controller_of(&orphan.metadata).unwrap().name, "web");
    let stranger = pods
        .iter()
        .find(|p| p.metadata.name() == "stranger")
        .unwrap();
    assert!(stranger.metadata.owner_references.is_empty());

    let key = Object::from(orphan.clone()).key();
    cluster
        .store
        .delete(&key, Default::default())
        .await
        .unwrap();
    cluster
        .eventually(MINUTE, "a replacement", || async {
            let pods = cluster.pods().await;
            pods.len() == 3 && pods.iter().all(|p| p.metadata.name() != "orphan")
        })
        .await;
    cluster
        .eventually(MINUTE, "2 ready again", || {
            status_matches(&cluster, "web", 2, 2)
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn available_replicas_wait_for_min_ready_seconds() {
    let cluster = Cluster::start(|k| k).await;
    let mut rs = berth_api::testing::replica_set("web", 2);
    rs.spec.min_ready_seconds = Some(10);
    cluster.store.create(rs).await.unwrap();
    cluster
        .eventually(MINUTE, "2 ready", || async {
            let rs = cluster
                .store
                .get_as::<ReplicaSet>(Some("default"), "web")
                .await
                .unwrap();
            rs.status.is_some_and(|s| s.ready_replicas == 2)
        })
        .await;
    let rs = cluster
        .store
        .get_as::<ReplicaSet>(Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(
        rs.status.unwrap().available_replicas,
        0,
        "ready, not yet available"
    );
    cluster
        .eventually(Duration::from_secs(15), "2 available", || {
            status_matches(&cluster, "web", 2, 2)
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_satisfied_replica_set_adopts_a_new_orphan_and_trims_the_excess() {
    let cluster = Cluster::start(|k| k).await;
    cluster
        .store
        .create(berth_api::testing::replica_set("web", 2))
        .await
        .unwrap();
    cluster
        .eventually(MINUTE, "2 ready", || status_matches(&cluster, "web", 2, 2))
        .await;
    let mut orphan = berth_api::testing::pod("orphan").build();
    orphan.metadata.labels.insert("app".into(), "web".into());
    cluster.store.create(orphan).await.unwrap();
    cluster
        .eventually(
            MINUTE,
            "the orphan adopted and, not ready, deleted",
            || async {
                let pods = cluster.pods().await;
                pods.len() == 2
                    && pods
                        .iter()
                        .all(|p| pods::controller_of(&p.metadata).is_some_and(|o| o.name == "web"))
            },
        )
        .await;
    assert!(
        cluster
            .pods()
            .await
            .iter()
            .all(|p| p.metadata.name() != "orphan")
    );
}
