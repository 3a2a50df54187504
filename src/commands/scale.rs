//! `berth scale deployment/NAME --replicas N` (or `deployment NAME`, `rs NAME`): a merge patch
//! of the `/scale` subresource, as kubectl sends it.

use std::process::ExitCode;

use http::Method;

use super::{
    objects::{block_on, connect, print},
    resource::{object_path, parse_one},
};
use crate::{
    cli::{GlobalArgs, ScaleArgs},
    client::Body,
};

pub fn run(global: &GlobalArgs, args: ScaleArgs) -> anyhow::Result<ExitCode> {
    if args.replicas < 0 {
        anyhow::bail!("--replicas={}: expected a number >= 0", args.replicas);
    }
    let target = parse_one(
        "scale",
        &args.args,
        &["Deployment", "ReplicaSet"],
        "deployments and replicasets",
    )?;
    let client = connect(global)?;
    block_on(async move {
        let path = format!(
            "{}/scale",
            object_path(target.kind, &args.namespace.namespace, &target.name)
        );
        let patch = serde_json::json!({"spec": {"replicas": args.replicas}});
        client
            .send(Method::PATCH, &path, Some(Body::merge_patch(&patch)))
            .await?;
        print(&format!(
            "{}/{} scaled\n",
            target.kind.resource_name(),
            target.name
        ))?;
        Ok(ExitCode::SUCCESS)
    })
}
