//! `berth set image deployment/NAME CONTAINER=IMAGE... [-n NS]` (`*=IMAGE` sets every
//! container): GET the object, change its pod template, PUT it back with the resourceVersion it
//! was read at; a 409 Conflict (someone else wrote in between) reads it again and retries.

use std::process::ExitCode;

use http::Method;

use super::{
    objects::{block_on, connect, get_raw, print},
    resource::{Target, object_path, parse_one},
};
use crate::{
    cli::{GlobalArgs, SetCommand, SetImageArgs},
    client::Body,
};

/// How many times a conflicting write is retried.
const ATTEMPTS: usize = 5;

/// The object, then `CONTAINER=IMAGE` pairs.
pub fn parse_set_image(args: &[String]) -> anyhow::Result<(Target, Vec<(String, String)>)> {
    let split = if args.first().is_some_and(|a| a.contains('/')) {
        1
    } else {
        2
    };
    if args.len() <= split {
        anyhow::bail!(
            "set image: expected the object then CONTAINER=IMAGE, e.g. `berth set image deployment/web web=busybox:1.37`"
        );
    }
    let target = parse_one(
        "set image",
        &args[..split],
        &["Deployment", "ReplicaSet", "Pod"],
        "deployments, replicasets and pods",
    )?;
    let images = args[split..]
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((container, image)) if !container.is_empty() && !image.is_empty() => {
                Ok((container.to_owned(), image.to_owned()))
            }
            _ => anyhow::bail!("set image: {pair:?}: expected CONTAINER=IMAGE"),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((target, images))
}

/// Sets the images in an object's JSON (its pod template, or a pod's own spec).
pub fn set_images(
    object: &mut serde_json::Value,
    kind: &str,
    images: &[(String, String)],
) -> anyhow::Result<()> {
    let spec = if kind == "Pod" {
        &mut object["spec"]
    } else {
        &mut object["spec"]["template"]["spec"]
    };
    for (container, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            let Some(containers) = spec.get_mut(list).and_then(|c| c.as_array_mut()) else {
                continue;
            };
            for c in containers {
                if container == "*" || c["name"].as_str() == Some(container.as_str()) {
                    c["image"] = image.clone().into();
                    found = true;
                }
            }
        }
        if !found {
            anyhow::bail!("unable to find container named {container:?}");
        }
    }
    Ok(())
}

pub fn run(global: &GlobalArgs, command: SetCommand) -> anyhow::Result<ExitCode> {
    let SetCommand::Image(args) = command;
    set_image(global, args)
}

fn set_image(global: &GlobalArgs, args: SetImageArgs) -> anyhow::Result<ExitCode> {
    let (target, images) = parse_set_image(&args.args)?;
    let client = connect(global)?;
    let namespace = args.namespace.namespace;
    block_on(async move {
        let path = object_path(target.kind, &namespace, &target.name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut object = get_raw(&client, target.kind, &namespace, &target.name).await?;
            set_images(&mut object, target.kind.kind, &images)?;
            match client
                .send(Method::PUT, &path, Some(Body::json("set image", &object)?))
                .await
            {
                Ok(_) => {
                    print(&format!(
                        "{}/{} image updated\n",
                        target.kind.resource_name(),
                        target.name
                    ))?;
                    return Ok(ExitCode::SUCCESS);
                }
                Err(err) if err.is_code(409) && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "conflict; reading the object again");
                }
                Err(err) => return Err(err.into()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_both_target_forms_and_pairs() {
        let (target, images) = parse_set_image(&strings(&[
            "deployment/web",
            "web=busybox:1.37",
            "side=b:2",
        ]))
        .unwrap();
        assert_eq!(
            (target.kind.kind, target.name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(images.len(), 2);
        let (target, _) = parse_set_image(&strings(&["deploy", "web", "*=busybox"])).unwrap();
        assert_eq!(target.name, "web");
        assert!(parse_set_image(&strings(&["deploy/web", "web"])).is_err());
        assert!(parse_set_image(&strings(&["deploy/web"])).is_err());
        assert!(parse_set_image(&strings(&["svc/web", "a=b"])).is_err());
    }

    #[test]
    fn images_change_in_the_template_and_unknown_containers_fail() {
        let mut d = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "busybox:1.36"}, {"name": "side", "image": "x"}]}}}});
        set_images(
            &mut d,
            "Deployment",
            &[("web".into(), "busybox:1.37".into())],
        )
        .unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:1.37"
        );
        assert_eq!(d["spec"]["template"]["spec"]["containers"][1]["image"], "x");
        set_images(&mut d, "Deployment", &[("*".into(), "y".into())]).unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "y");
        let err = set_images(&mut d, "Deployment", &[("nope".into(), "y".into())]).unwrap_err();
        assert_eq!(err.to_string(), "unable to find container named \"nope\"");
        let mut pod = serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        set_images(&mut pod, "Pod", &[("a".into(), "z".into())]).unwrap();
        assert_eq!(pod["spec"]["containers"][0]["image"], "z");
    }
}
