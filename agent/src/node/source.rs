//! [`StoreConfigSource`]: the daemon's [`ConfigSource`], ConfigMaps and Secrets from the store,
//! image configurations from the runtime's image store, Services for the containers' service
//! environment.
//!
//! Secrets hold decoded bytes in memory (`data` is base64 only on the wire); `stringData` is
//! write-only plain text that defaulting merges into `data`, and is merged here too (winning, as
//! Kubernetes does) for objects stored without defaulting. Values that are not UTF-8 are replaced
//! lossily: the agent's consumers (environment variables, volume files through this trait) take
//! text. A ConfigMap's `binaryData` entries are given when they are UTF-8.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_api::core_v1::{ConfigMap, Secret, Service};
use berth_runtime::image::ImageStore;
use berth_store::RedbStore;

use crate::{
    pod::{ConfigSource, ImageConfig, spec::SourceError},
    runtime::Signal,
};

/// ConfigMaps and Secrets from `store`, images from `images`.
#[derive(Debug, Clone)]
pub struct StoreConfigSource {
    store: RedbStore,
    images: ImageStore,
}

impl StoreConfigSource {
    pub fn new(store: RedbStore, images: ImageStore) -> Self {
        Self { store, images }
    }
}

#[async_trait]
impl ConfigSource for StoreConfigSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        match self.store.get_as::<ConfigMap>(Some(namespace), name).await {
            Ok(config_map) => Ok(Some(config_map_data(config_map))),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(SourceError {
                operation: "reading the configmap",
                source: Box::new(err),
            }),
        }
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        match self.store.get_as::<Secret>(Some(namespace), name).await {
            Ok(secret) => Ok(Some(secret_data(secret))),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(SourceError {
                operation: "reading the secret",
                source: Box::new(err),
            }),
        }
    }

    async fn image(&self, image: &str) -> Result<ImageConfig, SourceError> {
        let images = self.images.clone();
        let reference = image.to_owned();
        let resolved = tokio::task::spawn_blocking(move || images.resolve(&reference))
            .await
            .map_err(|source| SourceError {
                operation: "resolving the image",
                source: Box::new(source),
            })?
            .map_err(|source| SourceError {
                operation: "resolving the image",
                source: Box::new(source),
            })?;
        let config = resolved.config;
        Ok(ImageConfig {
            image_id: resolved.manifest_digest.to_string(),
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            env: config
                .env
                .iter()
                .map(|entry| match entry.split_once('=') {
                    Some((name, value)) => (name.to_owned(), value.to_owned()),
                    None => (entry.clone(), String::new()),
                })
                .collect(),
            working_dir: config.working_dir.filter(|dir| !dir.is_empty()),
            stop_signal: config.stop_signal.as_deref().and_then(Signal::parse),
        })
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, SourceError> {
        self.store
            .list_as::<Service>(Some(namespace), None)
            .await
            .map(|list| list.items)
            .map_err(|err| SourceError {
                operation: "listing the services",
                source: Box::new(err),
            })
    }
}

/// `data`, plus the UTF-8 entries of `binaryData`.
fn config_map_data(config_map: ConfigMap) -> BTreeMap<String, String> {
    let mut data = config_map.data;
    for (key, value) in config_map.binary_data {
        if let Ok(text) = String::from_utf8(value.0) {
            data.entry(key).or_insert(text);
        }
    }
    data
}

/// Decoded `data` with `stringData` merged over it.
fn secret_data(secret: Secret) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = secret
        .data
        .into_iter()
        .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
        .collect();
    data.extend(secret.string_data);
    data
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::ByteString;

    use super::*;

    #[test]
    fn secrets_merge_string_data_over_decoded_data() {
        let mut secret = Secret::default();
        secret
            .data
            .insert("user".into(), ByteString(b"admin".to_vec()));
        secret
            .data
            .insert("password".into(), ByteString(b"old".to_vec()));
        secret.string_data.insert("password".into(), "new".into());
        let data = secret_data(secret);
        assert_eq!(data["user"], "admin");
        assert_eq!(data["password"], "new");
    }

    #[test]
    fn config_maps_give_text_binary_data_but_data_wins() {
        let mut config_map = ConfigMap::default();
        config_map.data.insert("a".into(), "text".into());
        config_map
            .binary_data
            .insert("a".into(), ByteString(b"other".to_vec()));
        config_map
            .binary_data
            .insert("b".into(), ByteString(b"bin".to_vec()));
        config_map
            .binary_data
            .insert("c".into(), ByteString(vec![0xff, 0xfe]));
        let data = config_map_data(config_map);
        assert_eq!(
            data.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), "text".into()), ("b".into(), "bin".into())]
        );
    }
}
