//! Kubernetes-compatible manifest types, defaults, JSON Schema and validation for berth.
//!
//! Data flow: text → [`parse`] (YAML/JSON streams, `kind: List`) → [`Object`] →
//! [`defaults::ApplyDefaults`] → [`validation::validate`]. `*Spec` types are desired state and
//! `*Status` types observed state; field names are Kubernetes' own. The only I/O lives in
//! [`load`] (files, directories, stdin), kept apart from the rest.
//!
//! ```
//! use berth_api::{Object, parse::{Source, parse_and_validate}};
//!
//! let yaml = "
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: web}
//! spec:
//!   selector: {matchLabels: {app: web}}
//!   template:
//!     metadata: {labels: {app: web}}
//!     spec:
//!       containers: [{name: web, image: berth.local/busybox:latest}]
//! ";
//! let documents = parse_and_validate(Source::Named("web.yaml".into()), yaml).unwrap();
//! let Object::Deployment(deployment) = &documents[0].object else { unreachable!() };
//! assert_eq!(deployment.spec.replicas, Some(1)); // defaulted
//! assert_eq!(documents[0].object.key().to_string(), "Deployment default/web");
//!
//! let errors = parse_and_validate(Source::Named("bad.yaml".into()), "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "bad.yaml: document 1 (line 4): Pod \"p\": spec.containers: Required value: a pod needs at least one container"
//! );
//! ```

/// Implements [`meta::Resource`] for a kind: `impl_resource!(Type, "apps/v1", "Kind", "plural",
/// namespaced|cluster)`.
macro_rules! impl_resource {
    ($ty:ident, $api_version:literal, $kind:literal, $plural:literal, $scope:ident) => {
        impl $crate::meta::Resource for $ty {
            const API_VERSION: &'static str = $api_version;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $crate::impl_resource!(@scope $scope);
            fn metadata(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }
        }
    };
    (@scope namespaced) => {
        true
    };
    (@scope cluster) => {
        false
    };
}
pub(crate) use impl_resource;

pub mod apps_v1;
pub mod autoscaling_v2;
pub mod core_v1;
pub mod defaults;
pub mod duration;
pub mod intstr;
pub mod load;
mod locate;
pub mod meta;
pub mod object;
pub mod parse;
pub mod quantity;
pub mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod validation;

pub use defaults::ApplyDefaults;
pub use intstr::IntOrString;
pub use meta::{LabelSelector, ObjectMeta, Resource};
pub use object::{KINDS, KindInfo, Object, ObjectKey};
pub use parse::{Document, ManifestError, Source, parse_str};
pub use quantity::Quantity;
pub use time::Time;

/// The namespace of namespaced objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";
