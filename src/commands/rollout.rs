//! `berth rollout status|history|undo|restart|pause|resume deployment/NAME`.
//!
//! `status` follows the Deployment through the watch stream and says what kubectl says
//! (`Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are
//! available...`, `deployment "web" successfully rolled out`); it fails when the controller
//! reports `ProgressDeadlineExceeded` or when `--timeout` passes. `history` lists the
//! Deployment's ReplicaSets by their `deployment.kubernetes.io/revision`; `undo` uses the
//! daemon's rollback endpoint; `restart`, `pause` and `resume` are merge patches.

use std::{process::ExitCode, time::Duration};

use berth_api::{
    apps_v1::{Deployment, DeploymentConditionType, ReplicaSet},
    object::find_kind,
};
use http::Method;

use super::{
    describe::template_lines,
    objects::{Selectors, block_on, connect, get_typed, list_typed, print, typed},
    resource::{Target, collection_path, object_path, parse_one},
};
use crate::{
    cli::{
        GlobalArgs, RolloutCommand, RolloutHistoryArgs, RolloutStatusArgs, RolloutTargetArgs,
        RolloutUndoArgs,
    },
    client::{Body, Client, with_query},
};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

fn target(args: &RolloutTargetArgs, verb: &'static str) -> anyhow::Result<Target> {
    Ok(parse_one(verb, &args.args, &["Deployment"], "deployments")?)
}

pub fn run(global: &GlobalArgs, command: RolloutCommand) -> anyhow::Result<ExitCode> {
    let client = connect(global)?;
    match command {
        RolloutCommand::Status(args) => {
            let timeout = parse_timeout(&args.timeout)?;
            let target = target(&args.target, "rollout status")?;
            block_on(status(client, args, target, timeout))
        }
        RolloutCommand::History(args) => {
            let target = target(&args.target, "rollout history")?;
            block_on(history(client, args, target))
        }
        RolloutCommand::Undo(args) => {
            let target = target(&args.target, "rollout undo")?;
            block_on(undo(client, args, target))
        }
        RolloutCommand::Restart(args) => {
            let target = target(&args, "rollout restart")?;
            let patch = restart_patch(&berth_api::time::Time::now().to_string());
            block_on(patch_deployment(client, args, target, patch, "restarted"))
        }
        RolloutCommand::Pause(args) => {
            let target = target(&args, "rollout pause")?;
            let patch = serde_json::json!({"spec": {"paused": true}});
            block_on(patch_deployment(client, args, target, patch, "paused"))
        }
        RolloutCommand::Resume(args) => {
            let target = target(&args, "rollout resume")?;
            let patch = serde_json::json!({"spec": {"paused": false}});
            block_on(patch_deployment(client, args, target, patch, "resumed"))
        }
    }
}

/// `30s`, `5m`, `1h30m`, `0` (forever) → `None` for forever.
pub fn parse_timeout(text: &str) -> anyhow::Result<Option<Duration>> {
    let invalid =
        || anyhow::anyhow!("--timeout {text:?}: expected a duration such as 30s, 5m or 1h");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(invalid()),
        };
        total = total.saturating_add(value.saturating_mul(unit));
    }
    if !number.is_empty() {
        // A bare number: seconds (only `0` is common).
        total = total.saturating_add(number.parse::<u64>().map_err(|_| invalid())?);
    } else if text.is_empty() {
        return Err(invalid());
    }
    Ok((total > 0).then(|| Duration::from_secs(total)))
}

/// Where a rollout is: a message to print, and whether it is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Waiting(String),
    Done(String),
    Failed(String),
}

/// kubectl's `DeploymentStatusViewer`.
pub fn rollout_progress(deployment: &Deployment) -> Progress {
    let name = deployment.metadata.name();
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return Progress::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let deadline_exceeded = status.conditions.iter().any(|c| {
        c.type_ == DeploymentConditionType::Progressing
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return Progress::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let replicas = deployment.spec.replicas.unwrap_or(1);
    if status.updated_replicas < replicas {
        return Progress::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {replicas} new replicas \
             have been updated...",
            status.updated_replicas
        ));
    }
    if status.replicas > status.updated_replicas {
        return Progress::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending \
             termination...",
            status.replicas - status.updated_replicas
        ));
    }
    if status.available_replicas < status.updated_replicas {
        return Progress::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are \
             available...",
            status.available_replicas, status.updated_replicas
        ));
    }
    Progress::Done(format!("deployment {name:?} successfully rolled out"))
}

async fn status(
    client: Client,
    args: RolloutStatusArgs,
    target: Target,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let namespace = args.target.namespace.namespace.clone();
    let follow = async {
        let mut last = String::new();
        loop {
            let deployment: Deployment =
                get_typed(&client, target.kind, &namespace, &target.name).await?;
            let mut resource_version = deployment
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            if let Some(code) = report(&deployment, &mut last, args.watch)? {
                return Ok(code);
            }
            let path = with_query(
                &collection_path(target.kind, Some(&namespace)),
                &[
                    ("watch", "true"),
                    ("resourceVersion", &resource_version),
                    ("fieldSelector", &format!("metadata.name={}", target.name)),
                ],
            );
            let mut stream = client.stream(&path).await?;
            // The stream ends (server timeout) or says 410 Gone (too far behind): read the
            // Deployment again and watch from there.
            loop {
                let event = match stream.next_event::<serde_json::Value>().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(err) if err.is_code(410) => break,
                    Err(err) => return Err(err.into()),
                };
                if event.type_ == "DELETED" {
                    anyhow::bail!("deployment {:?} was deleted", target.name);
                }
                let deployment: Deployment = typed(event.object)?;
                resource_version = deployment
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default();
                if let Some(code) = report(&deployment, &mut last, true)? {
                    return Ok(code);
                }
            }
            tracing::debug!(%resource_version, "watch ended; watching again");
        }
    };
    match timeout {
        None => follow.await,
        Some(limit) => match tokio::time::timeout(limit, follow).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("timed out waiting for the condition"),
        },
    }
}

/// Prints the rollout's progress when it changed; `Some(exit code)` when there is no need
/// to wait further.
fn report(
    deployment: &Deployment,
    last: &mut String,
    watch: bool,
) -> anyhow::Result<Option<ExitCode>> {
    match rollout_progress(deployment) {
        Progress::Done(message) => {
            print(&format!("{message}\n"))?;
            Ok(Some(ExitCode::SUCCESS))
        }
        Progress::Failed(message) => anyhow::bail!("{message}"),
        Progress::Waiting(message) => {
            if message != *last {
                print(&format!("{message}\n"))?;
                *last = message;
            }
            Ok((!watch).then_some(ExitCode::SUCCESS))
        }
    }
}

/// The ReplicaSets a Deployment controls.
async fn owned_replica_sets(
    client: &Client,
    deployment: &Deployment,
    namespace: &str,
) -> anyhow::Result<Vec<ReplicaSet>> {
    let kind =
        find_kind("ReplicaSet").ok_or_else(|| anyhow::anyhow!("ReplicaSet is a known kind"))?;
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let all: Vec<ReplicaSet> =
        list_typed(client, kind, Some(namespace), &Selectors::default()).await?;
    Ok(all
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect())
}

fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

/// kubectl's history table: `REVISION  CHANGE-CAUSE` sorted by revision.
pub fn history_table(resource: &str, replica_sets: &[ReplicaSet]) -> String {
    let mut rows: Vec<(i64, String)> = replica_sets
        .iter()
        .filter_map(|rs| {
            let cause = rs
                .metadata
                .annotations
                .get(CHANGE_CAUSE_ANNOTATION)
                .cloned()
                .unwrap_or_else(|| "<none>".to_owned());
            Some((revision_of(rs)?, cause))
        })
        .collect();
    rows.sort();
    let mut out = format!("{resource}\nREVISION  CHANGE-CAUSE\n");
    for (revision, cause) in rows {
        out.push_str(&format!("{revision:<10}{cause}\n"));
    }
    out.push('\n');
    out
}

async fn history(
    client: Client,
    args: RolloutHistoryArgs,
    target: Target,
) -> anyhow::Result<ExitCode> {
    let namespace = &args.target.namespace.namespace;
    let deployment: Deployment = get_typed(&client, target.kind, namespace, &target.name).await?;
    let replica_sets = owned_replica_sets(&client, &deployment, namespace).await?;
    let resource = format!("{}/{}", target.kind.resource_name(), target.name);
    let Some(revision) = args.revision else {
        print(&history_table(&resource, &replica_sets))?;
        return Ok(ExitCode::SUCCESS);
    };
    let Some(rs) = replica_sets
        .iter()
        .find(|rs| revision_of(rs) == Some(revision))
    else {
        anyhow::bail!("unable to find the specified revision {revision} of {resource}");
    };
    let mut out = format!("{resource} with revision #{revision}\nPod Template:\n");
    if let Some(template) = &rs.spec.template {
        for line in template_lines(template) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}

async fn undo(client: Client, args: RolloutUndoArgs, target: Target) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/rollback",
        object_path(target.kind, &args.target.namespace.namespace, &target.name)
    );
    let body = serde_json::json!({"toRevision": args.to_revision});
    client
        .send(Method::POST, &path, Some(Body::json("rollback", &body)?))
        .await?;
    print(&format!(
        "{}/{} rolled back\n",
        target.kind.resource_name(),
        target.name
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The merge patch of `rollout restart`: a new template annotation makes a new revision.
pub fn restart_patch(now: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT_ANNOTATION: now
    }}}}})
}

async fn patch_deployment(
    client: Client,
    args: RolloutTargetArgs,
    target: Target,
    patch: serde_json::Value,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let path = object_path(target.kind, &args.namespace.namespace, &target.name);
    client
        .send(Method::PATCH, &path, Some(Body::merge_patch(&patch)))
        .await?;
    print(&format!(
        "{}/{} {done}\n",
        target.kind.resource_name(),
        target.name
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use berth_api::{
        apps_v1::{DeploymentCondition, DeploymentStatus},
        meta::ConditionStatus,
        testing,
    };

    use super::*;

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        [total, updated, available]: [i32; 3],
    ) -> Deployment {
        let mut d = testing::deployment("web").with_replicas(replicas).build();
        d.metadata.generation = Some(generation);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(observed),
            replicas: total,
            updated_replicas: updated,
            available_replicas: available,
            ..DeploymentStatus::default()
        });
        d
    }

    #[test]
    fn progress_messages_are_kubectls() {
        let waiting = |d: &Deployment| match rollout_progress(d) {
            Progress::Waiting(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            waiting(&deployment(2, 1, 3, [3, 3, 3])),
            "Waiting for deployment spec update to be observed..."
        );
        assert_eq!(
            waiting(&deployment(2, 2, 3, [4, 1, 3])),
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        assert_eq!(
            waiting(&deployment(2, 2, 3, [4, 3, 3])),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            waiting(&deployment(2, 2, 3, [3, 3, 1])),
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available..."
        );
        assert_eq!(
            rollout_progress(&deployment(2, 2, 3, [3, 3, 3])),
            Progress::Done("deployment \"web\" successfully rolled out".into())
        );
        let mut stuck = deployment(2, 2, 3, [3, 1, 1]);
        if let Some(status) = stuck.status.as_mut() {
            status.conditions.push(DeploymentCondition {
                type_: DeploymentConditionType::Progressing,
                status: ConditionStatus::False,
                last_update_time: None,
                last_transition_time: None,
                reason: Some("ProgressDeadlineExceeded".into()),
                message: None,
            });
        }
        assert_eq!(
            rollout_progress(&stuck),
            Progress::Failed("deployment \"web\" exceeded its progress deadline".into())
        );
    }

    #[test]
    fn timeouts_parse_like_kubectl_durations() {
        assert_eq!(parse_timeout("0s").unwrap(), None);
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout("90").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m").unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_timeout("1h30m10s").unwrap(),
            Some(Duration::from_secs(5410))
        );
        for bad in ["", "5x", "m", "1.5m"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_lists_revisions_in_order_with_their_cause() {
        let rs = |name: &str, revision: &str, cause: Option<&str>| {
            let mut rs = testing::replica_set(name, 1);
            rs.metadata
                .annotations
                .insert(REVISION_ANNOTATION.into(), revision.into());
            if let Some(cause) = cause {
                rs.metadata
                    .annotations
                    .insert(CHANGE_CAUSE_ANNOTATION.into(), cause.into());
            }
            rs
        };
        let table = history_table(
            "deployment.apps/web",
            &[
                rs("web-b", "2", Some("set image web=busybox:1.37")),
                rs("web-a", "1", None),
                testing::replica_set("unrevisioned", 1),
            ],
        );
        assert_eq!(
            table,
            "deployment.apps/web\nREVISION  CHANGE-CAUSE\n1         <none>\n\
             2         set image web=busybox:1.37\n\n"
        );
    }

    #[test]
    fn restart_patches_the_template_annotation() {
        assert_eq!(
            restart_patch("2024-05-01T12:00:00Z"),
            serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2024-05-01T12:00:00Z"
            }}}}})
        );
    }
}
