//! Identifiers. Every entity id is a UUIDv7: unique without coordination, and
//! ordered by creation time, which keeps cursor pagination and index locality
//! cheap.

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an id given by a caller; the error names the field.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] when `raw` is not a UUID.
pub fn parse_id(field: &str, raw: &str) -> crate::Result<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| crate::Error::invalid(field, "must be a UUID"))
}

/// Parses an optional id: empty text means none.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] when `raw` is neither empty nor a UUID.
pub fn parse_optional_id(field: &str, raw: &str) -> crate::Result<Option<Uuid>> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse_id(field, raw).map(Some)
    }
}
