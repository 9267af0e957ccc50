//! Paging on the REST side: the `limit` and `cursor` every list route takes
//! and the page it answers. The gateway passes both through; the service
//! that owns the list validates them (`kernel::page::Page`: 0 means the
//! default of 50, at most 500, a cursor is one it issued).

use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Paging of a list route; a route's own filters come in a second query struct.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 50, at most 500).
    #[serde(default)]
    pub limit: u32,
    /// From the previous page.
    #[serde(default)]
    pub cursor: String,
}

impl ListQuery {
    /// The service's page request.
    pub fn request(self) -> Option<pb::PageRequest> {
        Some(pb::PageRequest {
            limit: self.limit,
            cursor: self.cursor,
        })
    }
}

/// A page of items.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from items and a service's page info.
    pub fn new(items: Vec<T>, info: Option<pb::PageInfo>) -> Self {
        Self {
            items,
            next_cursor: info.map(|p| p.next_cursor).filter(|c| !c.is_empty()),
        }
    }
}
