//! The error model shared by every service. A domain error becomes an
//! [`Error`]; it is mapped once to a gRPC status ([`From<Error> for
//! tonic::Status`]) and, at the gateway, once from that status to RFC 7807
//! problem+json ([`Problem::from_status`]). Input errors carry the field that is
//! wrong; unexpected errors are logged with their cause chain and answered
//! without internals.

use serde::Serialize;
use tonic::metadata::MetadataValue;

/// Metadata key carrying the failing field of an invalid-argument status.
pub const FIELD_METADATA: &str = "paas-field";
/// The same, for a field that is not ASCII (a label key in another script):
/// gRPC carries such text only in binary metadata.
pub const FIELD_METADATA_BIN: &str = "paas-field-bin";

/// Result with the kernel error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a service call, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong; `field` names which part.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field, as the API names it (`name`, `quota.requests.cpu`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{kind} {id} not found")]
    NotFound {
        /// The kind of thing (`tenant`).
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// It conflicts with what exists (a taken name, a stale version).
    #[error("{0}")]
    Conflict(String),
    /// The state does not allow it now (approve a draft, say).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Over a quota or a limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// No valid caller identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Anything unexpected; logged with its cause, answered without it.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An input error on `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A missing thing of `kind`.
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// An unexpected failure, keeping its cause for the log.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }

    /// The failing field of an input error.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidArgument { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is unavailable".into())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(format!("already exists ({})", db.constraint().unwrap_or("unique")))
            }
            // A CHECK constraint or a trigger refusing a change of state.
            sqlx::Error::Database(db) if db.is_check_violation() => Self::FailedPrecondition(db.message().to_string()),
            // Text PostgreSQL cannot store (a NUL): the gateway refuses it
            // naming the field; this keeps any other way in from being a 500.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                Self::invalid("input", "contains a character that cannot be stored (NUL)")
            }
            _ => Self::internal(e),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Code;
        let (code, message) = match &e {
            Error::InvalidArgument { .. } => (Code::InvalidArgument, e.to_string()),
            Error::NotFound { .. } => (Code::NotFound, e.to_string()),
            Error::Conflict(m) => (Code::AlreadyExists, m.clone()),
            Error::FailedPrecondition(m) => (Code::FailedPrecondition, m.clone()),
            Error::ResourceExhausted(m) => (Code::ResourceExhausted, m.clone()),
            Error::Unauthenticated(m) => (Code::Unauthenticated, m.clone()),
            Error::PermissionDenied(m) => (Code::PermissionDenied, m.clone()),
            Error::Unavailable(m) => (Code::Unavailable, m.clone()),
            Error::Internal(cause) => {
                tracing::error!(error = %cause, chain = ?cause, "internal error");
                (Code::Internal, "internal error".to_string())
            }
        };
        let mut status = tonic::Status::new(code, message);
        // An ASCII metadata value takes bytes over 0x7f but cannot be read
        // back as text, so anything but ASCII goes as binary.
        if let Some(field) = e.field() {
            match MetadataValue::try_from(field) {
                Ok(v) if field.is_ascii() => {
                    status.metadata_mut().insert(FIELD_METADATA, v);
                }
                _ => {
                    status
                        .metadata_mut()
                        .insert_bin(FIELD_METADATA_BIN, MetadataValue::from_bytes(field.as_bytes()));
                }
            }
        }
        status
    }
}

/// An RFC 7807 problem document, as the gateway answers errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URN per kind of problem (`urn:paas:problem:invalid-argument`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The failing field, for input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id, to find the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds until a retry can succeed (a lockout): sent as the
    /// `Retry-After` header, not in the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of a given kind.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:paas:problem:{slug}"),
            title: title.into(),
            status,
            detail: detail.into(),
            field: None,
            request_id: None,
            retry_after: None,
        }
    }

    /// An input error on `field` (HTTP 400).
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(400, "invalid-argument", "Invalid argument", detail)
        }
    }

    /// Maps a gRPC status from a service to the problem the gateway answers.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let detail = status.message().to_string();
        let mut p = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::new(400, "invalid-argument", "Invalid argument", detail),
            Code::NotFound => Self::new(404, "not-found", "Not found", detail),
            Code::AlreadyExists | Code::Aborted => Self::new(409, "conflict", "Conflict", detail),
            Code::FailedPrecondition => Self::new(409, "failed-precondition", "Not allowed in this state", detail),
            Code::ResourceExhausted => Self::new(422, "quota-exceeded", "Quota or limit exceeded", detail),
            Code::Unauthenticated => Self::new(401, "unauthenticated", "Not authenticated", detail),
            Code::PermissionDenied => Self::new(403, "forbidden", "Forbidden", detail),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Self::new(
                503,
                "unavailable",
                "Service unavailable",
                "a platform service is unavailable; retry later",
            ),
            _ => Self::new(500, "internal", "Internal error", "internal error"),
        };
        p.field = status
            .metadata()
            .get(FIELD_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                let bytes = status.metadata().get_bin(FIELD_METADATA_BIN)?.to_bytes().ok()?;
                String::from_utf8(bytes.to_vec()).ok()
            });
        p
    }

    /// Attaches the request id.
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_error_keeps_its_field_through_grpc_to_problem_json() {
        let status = tonic::Status::from(Error::invalid("name", "must be a DNS label"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let p = Problem::from_status(&status);
        assert_eq!(p.status, 400);
        assert_eq!(p.field.as_deref(), Some("name"));
        assert_eq!(p.kind, "urn:paas:problem:invalid-argument");
        assert_eq!(p.detail, "name: must be a DNS label");
    }

    #[test]
    fn an_internal_error_hides_its_cause() {
        let status = tonic::Status::from(Error::internal("password=hunter2 in connection string"));
        let p = Problem::from_status(&status);
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("hunter2"));
    }

    #[test]
    fn an_input_error_keeps_a_non_ascii_field() {
        let status = tonic::Status::from(Error::invalid("labels.équipe", "is not a label key"));
        let p = Problem::from_status(&status);
        assert_eq!((p.status, p.field.as_deref()), (400, Some("labels.équipe")));
    }

    #[test]
    fn not_found_is_404() {
        let p = Problem::from_status(&Error::not_found("tenant", "x").into());
        assert_eq!((p.status, p.detail.as_str()), (404, "tenant x not found"));
    }
}
