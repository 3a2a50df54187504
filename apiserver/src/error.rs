//! [`ApiError`]: every failure of a request, rendered as a Kubernetes `Status` object with the
//! HTTP code a Kubernetes API server would answer, so that clients written for Kubernetes
//! (and the berth CLI) read `reason`, `code` and per-field `causes` the usual way.

use berth_api::{
    parse::{ManifestError, ManifestErrors},
    validation::{ErrorType, FieldError},
};
use serde::{Deserialize, Serialize};

/// One field-level cause of a failure (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub message: String,
    /// The field path (`spec.template.spec.containers[0].image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `metav1.StatusDetails`: what the failure is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// The Kubernetes `Status` object errors are answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    pub status: String,
    pub message: String,
    pub reason: String,
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

/// A failed request: the HTTP code, Kubernetes' reason and a message naming the object, the
/// field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<StatusDetails>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 401 without any detail: nothing about the server is told to an unauthenticated client.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn too_large(limit: u64) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// Names the object the error is about (`details.kind`/`details.name`).
    pub fn about(mut self, kind: &str, name: &str) -> Self {
        let details = self.details.get_or_insert_with(StatusDetails::default);
        details.kind = kind.to_owned();
        details.name = name.to_owned();
        self
    }

    pub fn with_causes(mut self, causes: Vec<StatusCause>) -> Self {
        self.details
            .get_or_insert_with(StatusDetails::default)
            .causes = causes;
        self
    }

    /// 422 for an object that failed validation: one cause per field error.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let summary = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {summary}"),
        )
        .about(kind, name)
        .with_causes(errors.iter().map(field_cause).collect())
    }

    /// 422 for manifests that failed to parse or validate: one cause per problem, each message
    /// naming the file, the document and the field.
    pub fn invalid_manifests(errors: &ManifestErrors) -> Self {
        let causes: Vec<StatusCause> = errors.0.iter().map(manifest_cause).collect();
        Self::new(
            422,
            "Invalid",
            format!(
                "{} problem(s) in the manifests, nothing was applied:\n{errors}",
                causes.len()
            ),
        )
        .with_causes(causes)
    }

    /// The `Status` object answered for this error.
    pub fn status(&self) -> Status {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: self.message.clone(),
            reason: self.reason.into(),
            code: self.code,
            details: self.details.clone(),
        }
    }
}

fn field_cause(error: &FieldError) -> StatusCause {
    let reason = match error.type_ {
        ErrorType::Required => "FieldValueRequired",
        ErrorType::Invalid => "FieldValueInvalid",
        ErrorType::Duplicate => "FieldValueDuplicate",
        ErrorType::NotFound => "FieldValueNotFound",
        ErrorType::NotSupported => "FieldValueNotSupported",
        ErrorType::Forbidden => "FieldValueForbidden",
        ErrorType::TooLong => "FieldValueTooLong",
    };
    StatusCause {
        reason: reason.into(),
        message: error.to_string(),
        field: error.field.clone(),
    }
}

fn manifest_cause(error: &ManifestError) -> StatusCause {
    let (reason, field) = match error {
        ManifestError::Invalid { source, .. } => (field_cause(source).reason, source.field.clone()),
        ManifestError::Decode { field, .. } => ("FieldValueInvalid".to_owned(), field.clone()),
        ManifestError::Duplicate { .. } => {
            ("FieldValueDuplicate".to_owned(), "metadata.name".into())
        }
        ManifestError::Kind { .. } => ("FieldValueNotSupported".to_owned(), "kind".into()),
        ManifestError::Syntax { .. }
        | ManifestError::TooDeep { .. }
        | ManifestError::NotAnObject { .. } => ("FieldValueInvalid".to_owned(), String::new()),
    };
    StatusCause {
        reason,
        message: error.to_string(),
        field,
    }
}

impl From<berth_store::Error> for ApiError {
    fn from(error: berth_store::Error) -> Self {
        let code = error.status_code();
        if code >= 500 {
            tracing::error!(err = ?error, "store failure");
        }
        let mut api = Self::new(code, error.reason(), error.to_string());
        let key = match &error {
            berth_store::Error::NotFound { key }
            | berth_store::Error::AlreadyExists { key }
            | berth_store::Error::Conflict { key, .. }
            | berth_store::Error::UidPrecondition { key, .. }
            | berth_store::Error::NamespaceNotFound { key, .. }
            | berth_store::Error::NamespaceTerminating { key, .. }
            | berth_store::Error::Forbidden { key, .. }
            | berth_store::Error::Encode { key, .. } => Some(key),
            berth_store::Error::Invalid { key, field, .. } => {
                api = api.with_causes(vec![StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: error.to_string(),
                    field: (*field).to_owned(),
                }]);
                Some(key)
            }
            _ => None,
        };
        if let Some(key) = key {
            api = api.about(key.kind, &key.name);
        }
        api
    }
}

impl From<crate::node::NodeError> for ApiError {
    fn from(error: crate::node::NodeError) -> Self {
        match error {
            crate::node::NodeError::NotFound(message) => Self::not_found(message),
            crate::node::NodeError::BadRequest(message) => Self::bad_request(message),
            crate::node::NodeError::Internal(message) => {
                tracing::error!(%message, "node failure");
                Self::internal(message)
            }
        }
    }
}

impl From<berth_controller::deployment::RollbackError> for ApiError {
    fn from(error: berth_controller::deployment::RollbackError) -> Self {
        use berth_controller::deployment::RollbackError;
        match error {
            RollbackError::Store { deployment, source } => {
                let mut api = Self::from(*source);
                api.message = format!("cannot roll back Deployment {deployment}: {}", api.message);
                api
            }
            RollbackError::RevisionNotFound { .. } => Self::not_found(error.to_string()),
            RollbackError::NoPreviousRevision { .. } | RollbackError::NoTemplate { .. } => {
                Self::bad_request(error.to_string())
            }
        }
    }
}
