//! Naming a pod for `logs` and `exec`: `NAME`, `pod/NAME`, or `deployment/NAME` /
//! `replicaset/NAME` for the first of their pods (by name), as kubectl picks one.

use berth_api::{
    apps_v1::{Deployment, ReplicaSet},
    core_v1::Pod,
    object::find_kind,
};

use super::{
    objects::{Selectors, get_typed, list_typed},
    resource::{ResourceError, parse_one},
    table::selector_string,
};
use crate::client::Client;

/// The name of the pod `arg` designates.
pub async fn resolve_pod(
    client: &Client,
    verb: &'static str,
    namespace: &str,
    arg: &str,
) -> anyhow::Result<String> {
    if !arg.contains('/') {
        return Ok(arg.to_owned());
    }
    let target = parse_one(
        verb,
        &[arg.to_owned()],
        &["Pod", "Deployment", "ReplicaSet"],
        "pods, deployments and replicasets",
    )?;
    let selector = match target.kind.kind {
        "Pod" => return Ok(target.name),
        "Deployment" => {
            let d: Deployment = get_typed(client, target.kind, namespace, &target.name).await?;
            d.spec.selector
        }
        _ => {
            let rs: ReplicaSet = get_typed(client, target.kind, namespace, &target.name).await?;
            rs.spec.selector
        }
    };
    let labels = selector_string(selector.as_ref());
    let pod_kind = find_kind("Pod").ok_or_else(|| ResourceError::UnknownKind {
        word: "pod".to_owned(),
    })?;
    let mut pods: Vec<Pod> = list_typed(
        client,
        pod_kind,
        Some(namespace),
        &Selectors {
            labels: &labels,
            fields: "",
        },
    )
    .await?;
    pods.sort_by(|a, b| a.metadata.name().cmp(b.metadata.name()));
    pods.into_iter()
        .map(|p| p.metadata.name().to_owned())
        .next()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}/{} has no pods (selector {labels})",
                target.kind.resource_name(),
                target.name
            )
        })
}
