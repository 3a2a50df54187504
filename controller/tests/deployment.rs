//! The Deployment controller end to end: controllers, an in-memory store and a FakeKubelet on
//! paused time.

mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use berth_api::{
    Object,
    apps_v1::{DeploymentConditionType, ReplicaSet},
    core_v1::Pod,
    intstr::IntOrString,
    meta::ConditionStatus,
};
use berth_controller::{
    Clock,
    deployment::{rollback_in_store, util},
    hash::POD_TEMPLATE_HASH_LABEL,
    pods,
    testing::Readiness,
};
use berth_store::{StreamExt, WatchFilter, WatchStart};
use proptest::prelude::*;
use support::{Cluster, deployment, image_of, recreate, rolling, set_image};
use tokio::task::JoinHandle;

const MINUTE: Duration = Duration::from_secs(60);
const TEN_MINUTES: Duration = Duration::from_secs(600);

/// Watches every store change and records a violation whenever `check` fails on the pods as
/// they are after it.
struct Invariant {
    violations: Arc<Mutex<Vec<String>>>,
    changes: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl Invariant {
    async fn watch(
        cluster: &Cluster,
        check: impl Fn(&BTreeMap<String, Pod>, &Clock) -> Result<(), String> + Send + 'static,
    ) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let changes = Arc::new(Mutex::new(0));
        let list = cluster.store.list_as::<Pod>(None, None).await.unwrap();
        let mut pods: BTreeMap<String, Pod> = list
            .items
            .into_iter()
            .map(|p| (p.metadata.name().to_owned(), p))
            .collect();
        let mut watch = cluster
            .store
            .watch(WatchFilter::all(), WatchStart::After(list.resource_version))
            .await
            .unwrap();
        let clock = cluster.clock;
        let (v, c) = (Arc::clone(&violations), Arc::clone(&changes));
        let task = tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let event = event.expect("the invariant watcher keeps up");
                if let Object::Pod(pod) = event.object {
                    if event.event_type == berth_store::EventType::Deleted {
                        pods.remove(pod.metadata.name());
                    } else {
                        pods.insert(pod.metadata.name().to_owned(), pod);
                    }
                }
                *c.lock().unwrap() += 1;
                if let Err(violation) = check(&pods, &clock) {
                    v.lock().unwrap().push(format!(
                        "after resourceVersion {}: {violation}",
                        event.resource_version
                    ));
                }
            }
        });
        Self {
            violations,
            changes,
            task,
        }
    }

    fn finish(self) -> (Vec<String>, usize) {
        self.task.abort();
        let violations = self.violations.lock().unwrap().clone();
        let changes = *self.changes.lock().unwrap();
        (violations, changes)
    }
}

fn condition(
    d: &berth_api::apps_v1::Deployment,
    type_: DeploymentConditionType,
) -> Option<berth_api::apps_v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// At most `replicas + max_surge` pods, at least `replicas - max_unavailable` available.
fn bounds(
    replicas: i32,
    max_surge: i32,
    max_unavailable: i32,
    min_ready_seconds: i32,
) -> impl Fn(&BTreeMap<String, Pod>, &Clock) -> Result<(), String> + Send + 'static {
    move |pods, clock| {
        let live: Vec<&Pod> = pods.values().filter(|p| pods::is_active(p)).collect();
        let available = live
            .iter()
            .filter(|p| pods::is_available(p, min_ready_seconds, clock))
            .count() as i32;
        if live.len() as i32 > replicas + max_surge {
            return Err(format!(
                "{} pods, more than {replicas} + maxSurge {max_surge}",
                live.len()
            ));
        }
        if available < replicas - max_unavailable {
            return Err(format!(
                "{available} available, fewer than {replicas} - maxUnavailable {max_unavailable}"
            ));
        }
        Ok(())
    }
}

/// Creates the Deployment and waits for its first rollout to complete.
async fn deploy(cluster: &Cluster, d: berth_api::apps_v1::Deployment) {
    let name = d.metadata.name().to_owned();
    cluster.store.create(d).await.unwrap();
    cluster
        .eventually(TEN_MINUTES, "the first rollout", || {
            cluster.rollout_complete(&name)
        })
        .await;
}

fn rolling_update_case(
    replicas: i32,
    surge: IntOrString,
    unavailable: IntOrString,
    min_ready_seconds: i32,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let cluster =
            Cluster::start(|k| k.image("busybox:2", Readiness::After(Duration::from_secs(3))))
                .await;
        let mut d = deployment("web", replicas, "busybox:1");
        rolling(&mut d, surge.clone(), unavailable.clone());
        d.spec.min_ready_seconds = Some(min_ready_seconds);
        let (max_surge, max_unavailable) = d
            .spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap()
            .resolve_fenceposts(replicas)
            .unwrap();
        let max_unavailable = max_unavailable.min(replicas);
        deploy(&cluster, d).await;

        let invariant = Invariant::watch(
            &cluster,
            bounds(replicas, max_surge, max_unavailable, min_ready_seconds),
        )
        .await;
        cluster.edit("web", |d| set_image(d, "busybox:2")).await;
        cluster
            .eventually(TEN_MINUTES, "the rolling update", || async {
                cluster.rollout_complete("web").await
                    && cluster
                        .pods()
                        .await
                        .iter()
                        .all(|p| image_of(p) == "busybox:2")
            })
            .await;
        let (violations, changes) = invariant.finish();
        assert!(violations.is_empty(), "{violations:#?}");
        if replicas > 0 {
            assert!(changes > 0, "the invariant saw the rollout");
        }
        let d = cluster.deployment("web").await;
        let progressing = condition(&d, DeploymentConditionType::Progressing).unwrap();
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        let available = condition(&d, DeploymentConditionType::Available).unwrap();
        assert_eq!(available.status, ConditionStatus::True);
        assert_eq!(
            available.reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let rss = cluster.replica_sets().await;
        assert_eq!(rss.len(), 2);
        assert_eq!(rss[0].spec.replicas, Some(0));
        assert_eq!(rss[1].spec.replicas, Some(replicas));
        assert_eq!(d.metadata.annotations[util::REVISION_ANNOTATION], "2");
    });
}

fn int_or_percent() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        (0i32..4).prop_map(IntOrString::Int),
        (0i32..=100)
            .prop_map(|p| p / 5 * 5)
            .prop_map(|p| IntOrString::String(format!("{p}%"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// At every store change of a rolling update, pods stay within replicas + maxSurge and
    /// available pods at least replicas - maxUnavailable.
    #[test]
    fn rolling_update_respects_surge_and_unavailability(
        replicas in 0i32..10,
        surge in int_or_percent(),
        unavailable in int_or_percent(),
        min_ready_seconds in 0i32..4,
    ) {
        rolling_update_case(replicas, surge, unavailable, min_ready_seconds);
    }
}

#[test]
fn rolling_update_with_defaults_and_ten_replicas() {
    rolling_update_case(10, "25%".into(), "25%".into(), 0);
}

#[test]
fn rolling_update_one_at_a_time() {
    rolling_update_case(5, 0.into(), 1.into(), 2);
}

#[tokio::test(start_paused = true)]
async fn first_rollout_creates_one_replica_set_named_by_the_template_hash() {
    let cluster = Cluster::start(|k| k).await;
    deploy(&cluster, deployment("web", 3, "busybox:1")).await;
    let d = cluster.deployment("web").await;
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = &rs.metadata.labels[POD_TEMPLATE_HASH_LABEL];
    assert_eq!(rs.metadata.name(), format!("web-{hash}"));
    assert_eq!(
        rs.spec.selector.as_ref().unwrap().match_labels[POD_TEMPLATE_HASH_LABEL],
        *hash
    );
    assert_eq!(rs.metadata.annotations[util::REVISION_ANNOTATION], "1");
    assert_eq!(
        rs.metadata.annotations[util::DESIRED_REPLICAS_ANNOTATION],
        "3"
    );
    assert_eq!(rs.metadata.annotations[util::MAX_REPLICAS_ANNOTATION], "4");
    let owner = pods::controller_of(&rs.metadata).unwrap();
    assert_eq!(Some(&owner.uid), d.metadata.uid.as_ref());
    for pod in cluster.pods().await {
        assert_eq!(pod.metadata.labels[POD_TEMPLATE_HASH_LABEL], *hash);
    }
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (3, 3, 3, 3, 0)
    );
    assert_eq!(status.observed_generation, d.metadata.generation);
    let progressing = condition(
        &cluster.deployment("web").await,
        DeploymentConditionType::Progressing,
    )
    .unwrap();
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn scaling_changes_the_replica_set() {
    let cluster = Cluster::start(|k| k).await;
    deploy(&cluster, deployment("web", 2, "busybox:1")).await;
    cluster.edit("web", |d| d.spec.replicas = Some(5)).await;
    cluster
        .eventually(MINUTE, "5 replicas", || cluster.rollout_complete("web"))
        .await;
    cluster.edit("web", |d| d.spec.replicas = Some(1)).await;
    cluster
        .eventually(MINUTE, "1 replica", || cluster.rollout_complete("web"))
        .await;
    assert_eq!(cluster.replica_sets().await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let cluster = Cluster::start(|k| k).await;
    let mut d = deployment("web", 3, "busybox:1");
    recreate(&mut d);
    deploy(&cluster, d).await;
    let invariant = Invariant::watch(&cluster, |pods, _| {
        let images: std::collections::BTreeSet<&str> = pods.values().map(image_of).collect();
        if images.len() > 1 {
            return Err(format!("old and new pods together: {images:?}"));
        }
        Ok(())
    })
    .await;
    cluster.edit("web", |d| set_image(d, "busybox:2")).await;
    cluster
        .eventually(TEN_MINUTES, "the recreate", || async {
            cluster.rollout_complete("web").await
                && cluster
                    .pods()
                    .await
                    .iter()
                    .all(|p| image_of(p) == "busybox:2")
        })
        .await;
    let (violations, changes) = invariant.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(changes >= 6, "3 pods went and 3 came");
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_the_old_template_and_reuses_its_replica_set() {
    let cluster = Cluster::start(|k| k).await;
    deploy(&cluster, deployment("web", 2, "busybox:1")).await;
    let first = cluster.replica_sets().await[0].clone();
    cluster.edit("web", |d| set_image(d, "busybox:2")).await;
    cluster
        .eventually(TEN_MINUTES, "revision 2", || async {
            cluster.rollout_complete("web").await
                && cluster
                    .pods()
                    .await
                    .iter()
                    .all(|p| image_of(p) == "busybox:2")
        })
        .await;

    let rolled_back = rollback_in_store(&cluster.store, "default", "web", None)
        .await
        .unwrap();
    assert_eq!(
        rolled_back.spec.template.spec.containers[0]
            .image
            .as_deref(),
        Some("busybox:1")
    );
    assert!(
        !rolled_back
            .spec
            .template
            .metadata
            .labels
            .contains_key(POD_TEMPLATE_HASH_LABEL)
    );
    cluster
        .eventually(TEN_MINUTES, "the rollback", || async {
            cluster.rollout_complete("web").await
                && cluster
                    .pods()
                    .await
                    .iter()
                    .all(|p| image_of(p) == "busybox:1")
        })
        .await;
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let reused = rss.last().unwrap();
    assert_eq!(reused.metadata.uid, first.metadata.uid);
    assert_eq!(reused.metadata.annotations[util::REVISION_ANNOTATION], "3");
    assert_eq!(reused.spec.replicas, Some(2));
    let d = cluster.deployment("web").await;
    assert_eq!(d.metadata.annotations[util::REVISION_ANNOTATION], "3");

    // To an explicit revision: 2 is busybox:2.
    let rolled = rollback_in_store(&cluster.store, "default", "web", Some(2))
        .await
        .unwrap();
    assert_eq!(
        rolled.spec.template.spec.containers[0].image.as_deref(),
        Some("busybox:2")
    );
    assert!(
        rollback_in_store(&cluster.store, "default", "web", Some(9))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn pause_stops_a_rollout_and_resume_finishes_it() {
    let cluster =
        Cluster::start(|k| k.image("busybox:2", Readiness::After(Duration::from_secs(10)))).await;
    let mut d = deployment("web", 4, "busybox:1");
    rolling(&mut d, 1.into(), 0.into());
    deploy(&cluster, d).await;
    cluster.edit("web", |d| set_image(d, "busybox:2")).await;
    cluster
        .eventually(MINUTE, "the first new pod available", || async {
            cluster
                .pods()
                .await
                .iter()
                .any(|p| image_of(p) == "busybox:2" && pods::is_ready(p))
        })
        .await;
    cluster.edit("web", |d| d.spec.paused = Some(true)).await;
    cluster
        .eventually(MINUTE, "the paused condition", || async {
            let d = cluster.deployment("web").await;
            condition(&d, DeploymentConditionType::Progressing)
                .is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"))
        })
        .await;
    let images = |pods: Vec<Pod>| {
        let mut images: Vec<String> = pods.iter().map(|p| image_of(p).to_owned()).collect();
        images.sort();
        images
    };
    let specs = |rss: Vec<ReplicaSet>| rss.iter().map(|rs| rs.spec.replicas).collect::<Vec<_>>();
    let paused_pods = images(cluster.pods().await);
    let paused_rss = specs(cluster.replica_sets().await);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(images(cluster.pods().await), paused_pods);
    assert_eq!(specs(cluster.replica_sets().await), paused_rss);
    assert!(
        paused_pods.iter().any(|i| i == "busybox:1"),
        "stopped mid-way: {paused_pods:?}"
    );
    let progressing = condition(
        &cluster.deployment("web").await,
        DeploymentConditionType::Progressing,
    )
    .unwrap();
    assert_eq!(progressing.status, ConditionStatus::Unknown);
    assert_eq!(progressing.message.as_deref(), Some("Deployment is paused"));

    cluster.edit("web", |d| d.spec.paused = Some(false)).await;
    cluster
        .eventually(TEN_MINUTES, "the rest of the rollout", || async {
            cluster.rollout_complete("web").await
                && cluster
                    .pods()
                    .await
                    .iter()
                    .all(|p| image_of(p) == "busybox:2")
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn never_ready_pods_exceed_the_progress_deadline() {
    let cluster = Cluster::start(|k| k.image("broken:1", Readiness::Never)).await;
    deploy(&cluster, deployment("web", 2, "busybox:1")).await;
    cluster
        .edit("web", |d| {
            set_image(d, "broken:1");
            d.spec.progress_deadline_seconds = Some(30);
        })
        .await;
    cluster
        .eventually(MINUTE, "ReplicaSetUpdated", || async {
            let d = cluster.deployment("web").await;
            condition(&d, DeploymentConditionType::Progressing)
                .is_some_and(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"))
        })
        .await;
    cluster
        .eventually(
            Duration::from_secs(90),
            "ProgressDeadlineExceeded",
            || async {
                let d = cluster.deployment("web").await;
                condition(&d, DeploymentConditionType::Progressing)
                    .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            },
        )
        .await;
    let d = cluster.deployment("web").await;
    let progressing = condition(&d, DeploymentConditionType::Progressing).unwrap();
    assert_eq!(progressing.status, ConditionStatus::False);
    let new_rs = cluster.replica_sets().await.pop().unwrap();
    assert_eq!(
        progressing.message.unwrap(),
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            new_rs.metadata.name()
        )
    );
    // The old pods keep serving: at most maxUnavailable (25% of 2 = 0) went.
    let old_available = cluster
        .pods()
        .await
        .iter()
        .filter(|p| image_of(p) == "busybox:1" && pods::is_ready(p))
        .count();
    assert_eq!(old_available, 2);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_deployment_deletes_its_replica_sets_and_pods() {
    let cluster = Cluster::start(|k| k).await;
    deploy(&cluster, deployment("web", 3, "busybox:1")).await;
    deploy(&cluster, deployment("api", 1, "busybox:1")).await;
    let key = berth_store::key_of::<berth_api::apps_v1::Deployment>(Some("default"), "web");
    cluster
        .store
        .delete(&key, Default::default())
        .await
        .unwrap();
    cluster
        .eventually(MINUTE, "web's ReplicaSets and pods gone", || async {
            let rss = cluster.replica_sets().await;
            let pods = cluster.pods().await;
            rss.len() == 1 && pods.len() == 1
        })
        .await;
    assert!(
        cluster.replica_sets().await[0]
            .metadata
            .name()
            .starts_with("api-")
    );
    // Nothing comes back.
    tokio::time::sleep(MINUTE).await;
    assert_eq!(cluster.pods().await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn orphans_of_owners_gone_while_down_are_collected_at_startup() {
    let cluster = Cluster::store_only();
    let mut rs = berth_api::testing::replica_set("ghost-abc", 2);
    rs.metadata.owner_references = vec![berth_api::meta::OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "ghost".into(),
        uid: "gone-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    let rs = cluster.store.create(rs).await.unwrap();
    let mut pod = berth_api::testing::pod("ghost-abc-xyz12").build();
    pod.metadata.labels = [("app".to_owned(), "ghost-abc".to_owned())].into();
    pod.metadata.owner_references = vec![pods::controller_reference(
        "apps/v1",
        "ReplicaSet",
        rs.metadata(),
    )];
    cluster.store.create(pod).await.unwrap();
    let cluster = cluster.with_controllers(|k| k);
    cluster
        .eventually(MINUTE, "the orphans collected", || async {
            cluster.replica_sets().await.is_empty() && cluster.pods().await.is_empty()
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn revision_history_keeps_the_limit_of_old_replica_sets() {
    let cluster = Cluster::start(|k| k).await;
    let mut d = deployment("web", 1, "busybox:1");
    d.spec.revision_history_limit = Some(2);
    deploy(&cluster, d).await;
    for version in 2..=5 {
        let image = format!("busybox:{version}");
        cluster.edit("web", |d| set_image(d, &image)).await;
        cluster
            .eventually(TEN_MINUTES, "the rollout", || async {
                cluster.rollout_complete("web").await
                    && cluster.pods().await.iter().all(|p| image_of(p) == image)
            })
            .await;
    }
    cluster
        .eventually(MINUTE, "old revisions cleaned up", || async {
            cluster.replica_sets().await.len() == 3
        })
        .await;
    let revisions: Vec<String> = cluster
        .replica_sets()
        .await
        .iter()
        .map(|rs| rs.metadata.annotations[util::REVISION_ANNOTATION].clone())
        .collect();
    assert_eq!(revisions, ["3", "4", "5"]);
}

#[tokio::test(start_paused = true)]
async fn scaling_mid_rollout_is_proportional() {
    let cluster = Cluster::start(|k| k.image("broken:1", Readiness::Never)).await;
    let mut d = deployment("web", 10, "busybox:1");
    rolling(&mut d, 3.into(), 2.into());
    deploy(&cluster, d).await;
    cluster.edit("web", |d| set_image(d, "broken:1")).await;
    let sizes = || async {
        cluster
            .replica_sets()
            .await
            .iter()
            .map(|rs| rs.spec.replicas.unwrap())
            .collect::<Vec<_>>()
    };
    // Old 10 → 8 (maxUnavailable 2); new 3 → 5 (13 pods at most); then stuck: never ready.
    cluster
        .eventually(MINUTE, "the stuck rollout", || async {
            sizes().await == [8, 5]
        })
        .await;
    cluster.edit("web", |d| d.spec.replicas = Some(20)).await;
    // 20 + maxSurge 3 = 23 pods, shared 8:5 (of 13): round(8·23/13) = 14 and round(5·23/13) = 9.
    cluster
        .eventually(MINUTE, "proportional scaling", || async {
            sizes().await == [14, 9]
        })
        .await;
    for rs in cluster.replica_sets().await {
        assert_eq!(
            rs.metadata.annotations[util::DESIRED_REPLICAS_ANNOTATION],
            "20"
        );
        assert_eq!(rs.metadata.annotations[util::MAX_REPLICAS_ANNOTATION], "23");
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_set_name_taken_by_another_template_bumps_the_collision_count() {
    let cluster = Cluster::store_only();
    let d = deployment("web", 2, "busybox:1");
    let hash = berth_controller::hash::compute_hash(&d.spec.template, None);
    // An orphan ReplicaSet that has the name the Deployment's would get, another template, and
    // labels the Deployment selects: the Deployment adopts it as an old ReplicaSet.
    let mut squatter = berth_api::testing::replica_set(&format!("web-{hash}"), 0);
    squatter.metadata.labels = d.spec.template.metadata.labels.clone();
    squatter.spec.template.as_mut().unwrap().spec.containers[0].image = Some("other:1".into());
    cluster.store.create(squatter).await.unwrap();
    let cluster = cluster.with_controllers(|k| k);
    deploy(&cluster, d).await;
    let d = cluster.deployment("web").await;
    assert_eq!(d.status.as_ref().unwrap().collision_count, Some(1));
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 2);
    let new_hash = berth_controller::hash::compute_hash(&d.spec.template, Some(1));
    let new_rs = rss.iter().find(|rs| rs.spec.replicas == Some(2)).unwrap();
    assert_eq!(new_rs.metadata.name(), format!("web-{new_hash}"));
    let squatter = rss
        .iter()
        .find(|rs| rs.metadata.name() == format!("web-{hash}"))
        .unwrap();
    assert_eq!(squatter.spec.replicas, Some(0));
    assert_eq!(
        pods::controller_of(&squatter.metadata).map(|o| o.name.as_str()),
        Some("web"),
        "adopted"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_to_create_are_reported_in_conditions() {
    let cluster = Cluster::store_only();
    let mut team = berth_api::core_v1::Namespace::default();
    team.metadata.name = Some("team".into());
    team.metadata.finalizers = vec!["kubernetes".into()];
    cluster.store.create(team).await.unwrap();
    let mut d = deployment("web", 1, "busybox:1");
    d.metadata.namespace = Some("team".into());
    cluster.store.create(d).await.unwrap();
    let mut rs = berth_api::testing::replica_set("solo", 1);
    rs.metadata.namespace = Some("team".into());
    cluster.store.create(rs).await.unwrap();
    // The namespace is terminating: nothing new can be created in it.
    let namespace = berth_store::key_of::<berth_api::core_v1::Namespace>(None, "team");
    cluster
        .store
        .delete(&namespace, Default::default())
        .await
        .unwrap();
    let cluster = cluster.with_controllers(|k| k);

    cluster
        .eventually(MINUTE, "ReplicaSetCreateError", || async {
            let d = cluster
                .store
                .get_as::<berth_api::apps_v1::Deployment>(Some("team"), "web")
                .await
                .unwrap();
            condition(&d, DeploymentConditionType::Progressing).is_some_and(|c| {
                c.status == ConditionStatus::False
                    && c.reason.as_deref() == Some("ReplicaSetCreateError")
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Failed to create new replica set \"web-"))
            })
        })
        .await;
    cluster
        .eventually(MINUTE, "the ReplicaSet's FailedCreate", || async {
            let rs = cluster
                .store
                .get_as::<ReplicaSet>(Some("team"), "solo")
                .await
                .unwrap();
            rs.status.is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "ReplicaFailure"
                        && c.reason.as_deref() == Some("FailedCreate")
                        && c.message.as_deref().is_some_and(|m| m.contains("terminat"))
                })
            })
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_new_template_mid_rollout_keeps_the_bounds_across_three_replica_sets() {
    let cluster = Cluster::start(|k| k.ready_after(Readiness::After(Duration::from_secs(5)))).await;
    let mut d = deployment("web", 6, "busybox:1");
    rolling(&mut d, 2.into(), 1.into());
    deploy(&cluster, d).await;
    let invariant = Invariant::watch(&cluster, bounds(6, 2, 1, 0)).await;
    cluster.edit("web", |d| set_image(d, "busybox:2")).await;
    cluster
        .eventually(MINUTE, "some busybox:2 pods ready", || async {
            cluster
                .pods()
                .await
                .iter()
                .filter(|p| image_of(p) == "busybox:2" && pods::is_ready(p))
                .count()
                >= 2
        })
        .await;
    assert!(
        cluster
            .pods()
            .await
            .iter()
            .any(|p| image_of(p) == "busybox:1"),
        "mid-way"
    );
    cluster.edit("web", |d| set_image(d, "busybox:3")).await;
    cluster
        .eventually(TEN_MINUTES, "the rollout to busybox:3", || async {
            cluster.rollout_complete("web").await
                && cluster
                    .pods()
                    .await
                    .iter()
                    .all(|p| image_of(p) == "busybox:3")
        })
        .await;
    let (violations, _) = invariant.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 3);
    assert_eq!(
        rss.iter()
            .map(|rs| rs.spec.replicas.unwrap())
            .collect::<Vec<_>>(),
        [0, 0, 6]
    );
}

/// The same bounds on a multi-threaded runtime in real time, where the controllers really run
/// in parallel (the daemon's setting).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_keeps_the_bounds_on_a_multi_threaded_runtime() {
    let cluster = Cluster::start(|k| {
        k.start_after(Duration::from_millis(20))
            .ready_after(Readiness::After(Duration::from_millis(50)))
    })
    .await;
    let mut d = deployment("web", 8, "busybox:1");
    rolling(&mut d, 2.into(), 2.into());
    deploy(&cluster, d).await;
    let invariant = Invariant::watch(&cluster, bounds(8, 2, 2, 0)).await;
    for version in 2..=4 {
        let image = format!("busybox:{version}");
        cluster.edit("web", |d| set_image(d, &image)).await;
        cluster
            .eventually(MINUTE, "the rollout", || async {
                cluster.rollout_complete("web").await
                    && cluster.pods().await.iter().all(|p| image_of(p) == image)
            })
            .await;
    }
    let (violations, changes) = invariant.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(changes > 24);
}
