//! What the client commands share: connecting to the daemon from the global flags, running
//! their async body, and reading objects (lists, single objects, watch events) as typed
//! `berth_api` objects.

use std::{future::Future, io::Write, process::ExitCode};

use anyhow::Context as _;
use berth_api::{Object, Resource, object::KindInfo, time::Time};
use serde::de::DeserializeOwned;

use crate::{
    cli::GlobalArgs,
    client::{Client, ClientError, Endpoint, with_query},
};

use super::resource::{collection_path, object_path};

/// The client the global flags describe: `--server` (with `--token-file` or `--token`), else
/// the unix socket.
pub fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let Some(server) = &global.server else {
        return Ok(Client::new(Endpoint::Unix(global.socket.clone())));
    };
    let token = match &global.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}: cannot read", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => global.token.clone(),
    };
    Ok(Client::new(Endpoint::tcp(server, token)?))
}

/// Runs a command's async body on a small runtime of its own.
pub fn block_on(
    future: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(future)
}

/// Writes to stdout and flushes; a reader that went away (`| head`) is not an error, the
/// command just ends.
pub fn print(text: &str) -> anyhow::Result<()> {
    print_bytes(text.as_bytes())
}

/// [`print`] for bytes that need not be UTF-8 (logs).
pub fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        result => result.context("cannot write to standard output"),
    }
}

pub fn now() -> Time {
    Time::now()
}

/// Lists may leave `apiVersion`/`kind` out of their items; the typed objects need them.
fn with_type(kind: &KindInfo, mut value: serde_json::Value) -> serde_json::Value {
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| kind.api_version.into());
        map.entry("kind").or_insert_with(|| kind.kind.into());
    }
    value
}

/// A JSON object of `kind` as a typed [`Object`].
pub fn object_from_value(kind: &KindInfo, value: serde_json::Value) -> anyhow::Result<Object> {
    let value = with_type(kind, value);
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    serde_json::from_value(value)
        .with_context(|| format!("{} {name:?}: cannot decode the daemon's answer", kind.kind))
}

/// A JSON object as one typed kind.
pub fn typed<T: Resource + DeserializeOwned>(mut value: serde_json::Value) -> anyhow::Result<T> {
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| T::API_VERSION.into());
        map.entry("kind").or_insert_with(|| T::KIND.into());
    }
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    serde_json::from_value(value)
        .with_context(|| format!("{} {name:?}: cannot decode the daemon's answer", T::KIND))
}

/// A list answer: items and the resourceVersion to watch from.
pub struct Listed {
    pub items: Vec<serde_json::Value>,
    pub resource_version: String,
}

/// Selectors of a list.
#[derive(Debug, Clone, Default)]
pub struct Selectors<'a> {
    pub labels: &'a str,
    pub fields: &'a str,
}

/// `GET` a list path.
pub async fn list_raw(
    client: &Client,
    kind: &KindInfo,
    namespace: Option<&str>,
    selectors: &Selectors<'_>,
) -> Result<Listed, ClientError> {
    let path = with_query(
        &collection_path(kind, namespace),
        &[
            ("labelSelector", selectors.labels),
            ("fieldSelector", selectors.fields),
        ],
    );
    let list: serde_json::Value = client.get(&path).await?;
    let items = match list.get("items") {
        Some(serde_json::Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let resource_version = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Listed {
        items,
        resource_version,
    })
}

/// The objects of a kind, as typed objects.
pub async fn list(
    client: &Client,
    kind: &KindInfo,
    namespace: Option<&str>,
    selectors: &Selectors<'_>,
) -> anyhow::Result<(Vec<Object>, String)> {
    let listed = list_raw(client, kind, namespace, selectors).await?;
    let objects = listed
        .items
        .into_iter()
        .map(|item| object_from_value(kind, item))
        .collect::<anyhow::Result<_>>()?;
    Ok((objects, listed.resource_version))
}

/// The objects of one typed kind.
pub async fn list_typed<T: Resource + DeserializeOwned>(
    client: &Client,
    kind: &KindInfo,
    namespace: Option<&str>,
    selectors: &Selectors<'_>,
) -> anyhow::Result<Vec<T>> {
    let listed = list_raw(client, kind, namespace, selectors).await?;
    listed.items.into_iter().map(typed).collect()
}

/// `GET` one object as JSON.
pub async fn get_raw(
    client: &Client,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
) -> Result<serde_json::Value, ClientError> {
    client.get(&object_path(kind, namespace, name)).await
}

/// `GET` one object of a typed kind.
pub async fn get_typed<T: Resource + DeserializeOwned>(
    client: &Client,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
) -> anyhow::Result<T> {
    typed(get_raw(client, kind, namespace, name).await?)
}

/// `No resources found in default namespace.` as kubectl says it.
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("No resources found in {namespace} namespace."),
        None => "No resources found".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use berth_api::{core_v1::Pod, object::find_kind};

    use super::*;

    #[test]
    fn list_items_without_kind_still_decode() {
        let item = serde_json::json!({"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}});
        let object = object_from_value(find_kind("Pod").unwrap(), item.clone()).unwrap();
        assert_eq!(object.name(), "web-1");
        let pod: Pod = typed(item).unwrap();
        assert_eq!(pod.spec.containers[0].name, "a");
        let err = object_from_value(
            find_kind("Pod").unwrap(),
            serde_json::json!({"metadata": {"name": "x"}, "spec": 3}),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("Pod \"x\""), "{err:#}");
    }
}
