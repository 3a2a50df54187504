//! `berth events [-n NS | -A] [-w] [--for KIND/NAME]`: events oldest first, as
//! `kubectl events` prints them; `-w` then prints each new one.

use std::process::ExitCode;

use berth_api::{Object, object::find_kind};

use super::{
    objects::{Selectors, block_on, connect, list, no_resources, now, object_from_value, print},
    resource::{ResourceError, collection_path, parse_targets},
    table::{Printer, event_last_seen, render_row},
};
use crate::{
    cli::{EventsArgs, GlobalArgs},
    client::with_query,
};

/// `--for pod/web-1` → `involvedObject.kind=Pod,involvedObject.name=web-1`.
pub fn for_selector(target: &str) -> Result<String, ResourceError> {
    let targets = parse_targets("events --for", &[target.to_owned()])?;
    let [target] = targets.as_slice() else {
        return Err(ResourceError::NotOne {
            verb: "events --for",
            count: targets.len(),
        });
    };
    Ok(format!(
        "involvedObject.kind={},involvedObject.name={}",
        target.kind.kind, target.name
    ))
}

fn sort_key(object: &Object) -> Option<berth_api::time::Time> {
    match object {
        Object::Event(e) => event_last_seen(e),
        _ => None,
    }
}

pub fn run(global: &GlobalArgs, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let fields = args
        .for_object
        .as_deref()
        .map(for_selector)
        .transpose()?
        .unwrap_or_default();
    let kind = find_kind("Event").ok_or_else(|| ResourceError::UnknownKind {
        word: "events".to_owned(),
    })?;
    let client = connect(global)?;
    block_on(async move {
        let namespace = (!args.all_namespaces).then_some(args.namespace.namespace.as_str());
        let selectors = Selectors {
            labels: "",
            fields: &fields,
        };
        let (mut events, resource_version) = list(&client, kind, namespace, &selectors).await?;
        events.sort_by_key(sort_key);
        let printer = Printer {
            wide: false,
            namespace_column: args.all_namespaces,
            kind_prefix: false,
            now: now(),
        };
        let table = printer.table(kind, &events);
        if events.is_empty() && !args.watch {
            eprintln!("{}", no_resources(namespace));
            return Ok(ExitCode::SUCCESS);
        }
        if !events.is_empty() {
            print(&table.render(true))?;
        }
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        let mut widths = table.widths(true);
        let mut header = events.is_empty();
        let path = with_query(
            &collection_path(kind, namespace),
            &[
                ("watch", "true"),
                ("resourceVersion", &resource_version),
                ("fieldSelector", &fields),
            ],
        );
        let mut stream = client.stream(&path).await?;
        while let Some(event) = stream.next_event::<serde_json::Value>().await? {
            if event.type_ == "DELETED" || (resource_version.is_empty() && event.type_ == "ADDED") {
                continue;
            }
            let row = Printer {
                now: now(),
                ..printer
            }
            .row(&object_from_value(kind, event.object)?);
            for (width, cell) in widths.iter_mut().zip(&row) {
                *width = (*width).max(cell.chars().count());
            }
            let mut out = String::new();
            if header {
                out.push_str(&render_row(&table.headers, &widths));
                header = false;
            }
            out.push_str(&render_row(&row, &widths));
            print(&out)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_names_the_involved_object() {
        assert_eq!(
            for_selector("pod/web-1").unwrap(),
            "involvedObject.kind=Pod,involvedObject.name=web-1"
        );
        assert_eq!(
            for_selector("deploy/web").unwrap(),
            "involvedObject.kind=Deployment,involvedObject.name=web"
        );
        assert!(for_selector("web").is_err());
    }
}
