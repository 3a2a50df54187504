//! Content-addressed OCI image store.
//!
//! INTERFACE CONTRACT used by the container module and the CLI (change only together):
//! - `ImageStore::open(root: &Path) -> Result<ImageStore>` with layout under `<root>/images/`.
//! - `ImageStore::resolve(&self, reference: &str) -> Result<ResolvedImage>` by name[:tag]
//!   (default tag `latest`), by full `sha256:…` digest or a unique hex prefix.
//! - `ResolvedImage { name: Option<String>, manifest_digest: Digest, config: ImageConfig,
//!   layers: Vec<PathBuf> }` with `layers` the unpacked read-only layer directories, lowest first,
//!   ready to be used as overlayfs lowerdirs, and `ImageConfig { entrypoint, cmd, env,
//!   working_dir, user, stop_signal, labels }` from the OCI image config.
//! - `ImageStore::remove(&self, reference: &str, in_use: &dyn Fn(&Digest) -> bool)` refuses when
//!   `in_use(manifest_digest)` is true.
