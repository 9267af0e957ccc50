//! Cursor pagination. A cursor is the last id of the previous page: ids are
//! time-ordered UUIDv7, so `WHERE id > cursor ORDER BY id LIMIT n` is stable
//! under concurrent inserts and needs no offset scan.

use uuid::Uuid;

/// Items per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items a page may hold.
pub const MAX_LIMIT: u32 = 500;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to return.
    pub limit: u32,
    /// Return items with ids after this one.
    pub after: Option<Uuid>,
}

impl Page {
    /// Validates a raw limit (0 = default) and cursor (empty = first page).
    ///
    /// # Errors
    /// The limit is over [`MAX_LIMIT`] or the cursor is not one we issued.
    pub fn parse(limit: u32, cursor: &str) -> crate::Result<Self> {
        if limit > MAX_LIMIT {
            return Err(crate::Error::invalid("limit", format!("must be at most {MAX_LIMIT}")));
        }
        let after = if cursor.is_empty() {
            None
        } else {
            Some(
                Uuid::parse_str(cursor)
                    .map_err(|_| crate::Error::invalid("cursor", "is not a cursor from a previous page"))?,
            )
        };
        Ok(Self {
            limit: if limit == 0 { DEFAULT_LIMIT } else { limit },
            after,
        })
    }

    /// Rows to fetch: one more than the limit, to know whether a next page exists.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the fetched rows to the page and returns the next cursor (empty at the end).
    pub fn finish<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, String) {
        if rows.len() > self.limit as usize {
            rows.truncate(self.limit as usize);
            let next = rows.last().map(|r| id(r).to_string()).unwrap_or_default();
            (rows, next)
        } else {
            (rows, String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_the_default_limit() {
        assert_eq!(Page::parse(0, "").unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn an_oversized_limit_names_the_field() {
        let err = Page::parse(MAX_LIMIT + 1, "").unwrap_err();
        assert_eq!(err.field(), Some("limit"));
    }

    #[test]
    fn a_foreign_cursor_names_the_field() {
        assert_eq!(Page::parse(10, "zzz").unwrap_err().field(), Some("cursor"));
    }

    #[test]
    fn finish_gives_a_cursor_only_when_more_rows_exist() {
        let page = Page::parse(2, "").unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| crate::id::new_id()).collect();
        let (rows, next) = page.finish(ids.clone(), |u| *u);
        assert_eq!(rows.len(), 2);
        assert_eq!(next, ids[1].to_string());
        let (rows, next) = page.finish(ids[..2].to_vec(), |u| *u);
        assert_eq!(rows.len(), 2);
        assert!(next.is_empty());
    }
}
