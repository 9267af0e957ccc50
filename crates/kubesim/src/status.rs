//! Kubernetes `Status` errors: the one error type of the crate, rendered as the
//! `Status` object (kind `Status`, `apiVersion: v1`) a real API server answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resource::ResourceType;

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a failed request is about, as in `Status.details`.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
    /// `(reason, field, message)` of each cause.
    pub causes: Vec<(String, String, String)>,
}

/// Every way a request can fail. Each variant maps to one Kubernetes `reason`
/// and HTTP code, as the real API server uses them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404 `NotFound`.
    #[error("{message}")]
    NotFound {
        /// The Status message.
        message: String,
        /// The Status details (kind, name, causes).
        details: Details,
    },
    /// 409 `AlreadyExists`.
    #[error("{message}")]
    AlreadyExists {
        /// The Status message.
        message: String,
        /// The Status details (kind, name, causes).
        details: Details,
    },
    /// 409 `Conflict`: stale resourceVersion or a server-side apply conflict.
    #[error("{message}")]
    Conflict {
        /// The Status message.
        message: String,
        /// The Status details (kind, name, causes).
        details: Details,
    },
    /// 422 `Invalid`: the object fails validation.
    #[error("{message}")]
    Invalid {
        /// The Status message.
        message: String,
        /// The Status details (kind, name, causes).
        details: Details,
    },
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 403 `Forbidden`, e.g. a quota refusal.
    #[error("{message}")]
    Forbidden {
        /// The Status message.
        message: String,
        /// The Status details (kind, name, causes).
        details: Details,
    },
    /// 405 `MethodNotAllowed`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 410 `Expired`: a resourceVersion or continue token older than the retained window.
    #[error("{0}")]
    Expired(String),
    /// 406 `NotAcceptable`: no representation the `Accept` header allows.
    #[error("{0}")]
    NotAcceptable(String),
    /// 415 `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503 `ServiceUnavailable` (fault injection).
    #[error("{0}")]
    Unavailable(String),
    /// 500 `InternalError` (fault injection).
    #[error("{0}")]
    Internal(String),
    /// A listener could not be bound or a kubeconfig could not be written.
    #[error("kubesim I/O: {context}")]
    Io {
        /// What kubesim was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::NotFound {
            message: format!("{} \"{name}\" not found", rt.qualified()),
            details: Details::named(rt, name, rt.plural),
        }
    }

    pub(crate) fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::AlreadyExists {
            message: format!("{} \"{name}\" already exists", rt.qualified()),
            details: Details::named(rt, name, rt.plural),
        }
    }

    pub(crate) fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                rt.qualified()
            ),
            details: Details::named(rt, name, rt.plural),
        }
    }

    /// 422 with one `FieldValueInvalid` cause per `(field, value, detail)`.
    pub(crate) fn invalid(rt: &ResourceType, name: &str, problems: &[(String, String)]) -> Self {
        let listed: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let kind = if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        let joined = if listed.len() == 1 {
            listed[0].clone()
        } else {
            format!("[{}]", listed.join(", "))
        };
        let mut details = Details::named(rt, name, rt.kind);
        details.causes = problems
            .iter()
            .map(|(f, m)| ("FieldValueInvalid".to_string(), f.clone(), m.clone()))
            .collect();
        Self::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {joined}"),
            details,
        }
    }

    pub(crate) fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::Forbidden {
            message: format!("{} \"{name}\" is forbidden: {why}", rt.qualified()),
            details: Details::named(rt, name, rt.plural),
        }
    }

    /// The HTTP status code the real API server uses for this error.
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Forbidden { .. } => 403,
            Self::MethodNotAllowed(_) => 405,
            Self::Expired(_) => 410,
            Self::NotAcceptable(_) => 406,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unavailable(_) => 503,
            Self::Internal(_) | Self::Io { .. } => 500,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden { .. } => "Forbidden",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::Expired(_) => "Expired",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) | Self::Io { .. } => "InternalError",
        }
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound { details, .. }
            | Self::AlreadyExists { details, .. }
            | Self::Conflict { details, .. }
            | Self::Invalid { details, .. }
            | Self::Forbidden { details, .. } => Some(details),
            _ => None,
        };
        if let Some(d) = details {
            let mut obj = json!({ "name": d.name, "kind": d.kind });
            if !d.group.is_empty() {
                obj["group"] = json!(d.group);
            }
            if !d.causes.is_empty() {
                obj["causes"] = d
                    .causes
                    .iter()
                    .map(|(reason, field, message)| json!({ "reason": reason, "message": message, "field": field }))
                    .collect();
            }
            status["details"] = obj;
        }
        status
    }
}

impl Details {
    pub(crate) fn named(rt: &ResourceType, name: &str, kind: &str) -> Self {
        Self {
            name: name.to_string(),
            group: rt.group.to_string(),
            kind: kind.to_string(),
            causes: Vec::new(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if matches!(self, Self::Io { .. }) {
            tracing::error!(error = ?self, "kubesim internal error");
        }
        (code, axum::Json(self.to_status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource;

    #[test]
    fn not_found_names_the_qualified_resource_like_the_api_server() {
        let err = Error::not_found(resource::get(resource::DEPLOYMENTS), "web");
        let status = err.to_status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["details"]["group"], "apps");
    }
}
