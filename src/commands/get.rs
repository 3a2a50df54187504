//! `berth get KIND[,KIND...] [NAME...] | KIND/NAME... [-n NS | -A] [-l SEL] [--field-selector SEL]
//! [-o wide|yaml|json|name] [-w] [--no-headers]`: kubectl's tables, or the objects themselves.
//!
//! `-w` prints the table, then one row per watch event from the list's resourceVersion on,
//! aligned with the first table, until interrupted.

use std::process::ExitCode;

use anyhow::Context as _;
use berth_api::{Object, object::KindInfo};

use super::{
    objects::{
        Selectors, block_on, connect, get_raw, list, list_raw, no_resources, now,
        object_from_value, print,
    },
    resource::{ResourceError, Target, all_kinds, collection_path, parse_kind, parse_targets},
    table::{Printer, Table, render_row},
};
use crate::{
    cli::{GetArgs, GetOutput, GlobalArgs},
    client::{Client, with_query},
};

/// What `get` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every object of these kinds.
    Kinds(Vec<&'static KindInfo>),
    /// Named objects.
    Named(Vec<Target>),
}

/// `pods`, `pods,svc`, `all`, `pod a b`, `pod/a svc/b`.
pub fn parse_request(args: &[String]) -> Result<Request, ResourceError> {
    let Some(first) = args.first() else {
        return Err(ResourceError::Missing { verb: "get" });
    };
    if first.contains('/') || args.len() > 1 {
        return parse_targets("get", args).map(Request::Named);
    }
    let mut kinds = Vec::new();
    for word in first.split(',').filter(|w| !w.is_empty()) {
        if word.eq_ignore_ascii_case("all") {
            kinds.extend(all_kinds());
        } else {
            kinds.push(parse_kind(word)?);
        }
    }
    if kinds.is_empty() {
        return Err(ResourceError::Missing { verb: "get" });
    }
    Ok(Request::Kinds(kinds))
}

/// `-o yaml|json` of the objects: the object itself when exactly one was asked for by name,
/// else a `List` (also of one or none), as kubectl prints them.
pub fn render_objects(
    objects: &[Object],
    output: GetOutput,
    single: bool,
) -> anyhow::Result<String> {
    let value = match objects {
        [one] if single => serde_json::to_value(one)?,
        many => serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": many,
        }),
    };
    match output {
        GetOutput::Json => Ok(format!("{}\n", serde_json::to_string_pretty(&value)?)),
        _ => serde_yaml::to_string(&value).context("cannot render YAML"),
    }
}

/// `-o name`: `deployment.apps/web`.
pub fn object_name(object: &Object) -> String {
    format!("{}/{}", object.info().resource_name(), object.name())
}

pub fn run(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<ExitCode> {
    let request = parse_request(&args.args)?;
    let client = connect(global)?;
    block_on(get(client, args, request))
}

async fn get(client: Client, args: GetArgs, request: Request) -> anyhow::Result<ExitCode> {
    let namespace = (!args.all_namespaces).then_some(args.namespace.namespace.as_str());
    let selectors = Selectors {
        labels: args.selector.as_deref().unwrap_or_default(),
        fields: args.field_selector.as_deref().unwrap_or_default(),
    };
    let single = matches!(&request, Request::Named(targets) if targets.len() == 1);
    let mut failed = false;
    // The objects found, grouped by kind in the order asked.
    let mut groups: Vec<(&'static KindInfo, Vec<Object>, String)> = Vec::new();
    match &request {
        Request::Kinds(kinds) => {
            for kind in kinds {
                let (objects, resource_version) =
                    list(&client, kind, namespace, &selectors).await?;
                groups.push((kind, objects, resource_version));
            }
        }
        Request::Named(targets) => {
            let namespace = args.namespace.namespace.as_str();
            for target in targets {
                match get_raw(&client, target.kind, namespace, &target.name).await {
                    Ok(value) => {
                        let object = object_from_value(target.kind, value)?;
                        match groups.iter_mut().find(|(k, _, _)| *k == target.kind) {
                            Some((_, objects, _)) => objects.push(object),
                            None => groups.push((target.kind, vec![object], String::new())),
                        }
                    }
                    Err(err) if err.is_code(404) => {
                        eprintln!("{err}");
                        failed = true;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
    let all: Vec<Object> = groups.iter().flat_map(|(_, o, _)| o.clone()).collect();
    let code = if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    match args.output {
        Some(output @ (GetOutput::Yaml | GetOutput::Json)) => {
            if !(all.is_empty() && failed) {
                print(&render_objects(&all, output, single)?)?;
            }
            return Ok(code);
        }
        Some(GetOutput::Name) => {
            let names: String = all
                .iter()
                .map(|o| format!("{}\n", object_name(o)))
                .collect();
            print(&names)?;
            return Ok(code);
        }
        _ => {}
    }
    let printer = Printer {
        wide: args.output == Some(GetOutput::Wide),
        namespace_column: args.all_namespaces,
        kind_prefix: groups.len() > 1,
        now: now(),
    };
    if all.is_empty() && !failed && !args.watch {
        eprintln!("{}", no_resources(namespace));
        return Ok(code);
    }
    let mut out = String::new();
    let mut last_table = None;
    for (kind, objects, _) in &groups {
        if objects.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let table = printer.table(kind, objects);
        out.push_str(&table.render(!args.no_headers));
        last_table = Some(table);
    }
    print(&out)?;
    if !args.watch {
        return Ok(code);
    }
    let [(kind, _, resource_version)] = groups.as_slice() else {
        anyhow::bail!("-w watches one kind at a time");
    };
    let table = last_table.unwrap_or_else(|| printer.table(kind, &[]));
    let mut field_selector = selectors.fields.to_owned();
    if let Request::Named(targets) = &request {
        let [target] = targets.as_slice() else {
            anyhow::bail!("-w watches one object or one kind at a time");
        };
        field_selector = format!("metadata.name={}", target.name);
    }
    watch(
        &client,
        kind,
        namespace,
        &Selectors {
            labels: selectors.labels,
            fields: &field_selector,
        },
        resource_version,
        &printer,
        &table,
        !args.no_headers,
    )
    .await?;
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
async fn watch(
    client: &Client,
    kind: &KindInfo,
    namespace: Option<&str>,
    selectors: &Selectors<'_>,
    resource_version: &str,
    printer: &Printer,
    first: &Table,
    headers: bool,
) -> anyhow::Result<()> {
    let open = |resource_version: String| async move {
        let path = with_query(
            &collection_path(kind, namespace),
            &[
                ("watch", "true"),
                ("resourceVersion", &resource_version),
                ("labelSelector", selectors.labels),
                ("fieldSelector", selectors.fields),
            ],
        );
        client.stream(&path).await
    };
    let mut resource_version = resource_version.to_owned();
    let mut stream = open(resource_version.clone()).await?;
    let mut widths = first.widths(headers);
    let mut printed_header = !first.rows.is_empty() || !headers;
    loop {
        let event = match stream.next_event::<serde_json::Value>().await {
            Ok(Some(event)) => event,
            // The daemon went away or ended the watch.
            Ok(None) => break,
            // 410 Gone: the watch fell too far behind. List again and go on from there.
            Err(err) if err.is_code(410) => {
                resource_version = list_raw(client, kind, namespace, selectors)
                    .await?
                    .resource_version;
                stream = open(resource_version.clone()).await?;
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        // Without a resourceVersion the stream starts with the current state, already printed.
        if resource_version.is_empty() && event.type_ == "ADDED" {
            continue;
        }
        let object = object_from_value(kind, event.object)?;
        let row = printer.row(&object);
        for (width, cell) in widths.iter_mut().zip(&row) {
            *width = (*width).max(cell.chars().count());
        }
        let mut out = String::new();
        if !printed_header {
            out.push_str(&render_row(&first.headers, &widths));
            printed_header = true;
        }
        out.push_str(&render_row(&row, &widths));
        print(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use berth_api::testing;

    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn requests_are_kinds_or_named_objects() {
        let Request::Kinds(kinds) = parse_request(&strings(&["all"])).unwrap() else {
            panic!("all is kinds");
        };
        assert_eq!(
            kinds.iter().map(|k| k.kind).collect::<Vec<_>>(),
            ["Pod", "Service", "Deployment", "ReplicaSet"]
        );
        let Request::Kinds(kinds) = parse_request(&strings(&["po,svc"])).unwrap() else {
            panic!("po,svc is kinds");
        };
        assert_eq!(kinds.len(), 2);
        let Request::Named(named) = parse_request(&strings(&["deploy", "web", "api"])).unwrap()
        else {
            panic!("deploy web api is named");
        };
        assert_eq!(named.len(), 2);
        assert!(matches!(
            parse_request(&strings(&["deploy/web"])).unwrap(),
            Request::Named(_)
        ));
        assert!(parse_request(&strings(&["widgets"])).is_err());
    }

    #[test]
    fn yaml_json_and_name_outputs() {
        let one = vec![Object::Deployment(testing::deployment("web").build())];
        let yaml = render_objects(&one, GetOutput::Yaml, true).unwrap();
        assert!(
            yaml.starts_with("apiVersion: apps/v1\nkind: Deployment\n"),
            "{yaml}"
        );
        let two = vec![
            Object::Deployment(testing::deployment("web").build()),
            Object::Service(testing::service("web", 80).build()),
        ];
        let list: serde_json::Value =
            serde_json::from_str(&render_objects(&two, GetOutput::Json, false).unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["kind"], "Service");
        assert_eq!(object_name(&two[0]), "deployment.apps/web");
        assert_eq!(object_name(&two[1]), "service/web");
    }
}
