//! Items as stored (in a draft or a release) and as shown: a secret item's
//! content is kept sealed and shown only masked.

use kernel::{Error, Result};
use uuid::Uuid;

use crate::effective::PlainItem;
use crate::format::Format;
use crate::secret::{Sealer, mask};

/// An item row: plain `content`, or `sealed` for a secret one.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredItem {
    /// File name.
    pub name: String,
    /// Format name.
    pub format: String,
    /// Whether it is secret.
    pub secret: bool,
    /// The content of a plain item.
    pub content: Option<String>,
    /// The sealed content of a secret item.
    pub sealed: Option<Vec<u8>>,
}

/// An item as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    /// File name.
    pub name: String,
    /// Format name.
    pub format: String,
    /// The content; empty for a secret item.
    pub content: String,
    /// Whether it is secret.
    pub secret: bool,
    /// A secret item's masked content (at most its last four characters).
    pub masked: String,
}

impl StoredItem {
    fn format(&self) -> Format {
        // Stored formats were parsed on save.
        Format::parse(&self.format, &self.name).unwrap_or(Format::Text)
    }

    /// The item in the clear (opens a secret one).
    ///
    /// # Errors
    /// A sealed value does not open.
    pub async fn open(&self, sealer: &Sealer, tenant: Uuid) -> Result<PlainItem> {
        let content = match (&self.content, &self.sealed) {
            (Some(content), _) => content.clone(),
            (None, Some(sealed)) => sealer.open(tenant, &self.name, sealed).await?,
            (None, None) => return Err(Error::internal(format!("item {} has no content", self.name))),
        };
        Ok(PlainItem {
            name: self.name.clone(),
            format: self.format(),
            secret: self.secret,
            content,
        })
    }

    /// The item as shown: a secret one masked.
    ///
    /// # Errors
    /// A sealed value does not open.
    pub async fn view(&self, sealer: &Sealer, tenant: Uuid) -> Result<ItemView> {
        let plain = self.open(sealer, tenant).await?;
        Ok(if self.secret {
            ItemView {
                name: plain.name,
                format: self.format.clone(),
                content: String::new(),
                secret: true,
                masked: mask(&plain.content),
            }
        } else {
            ItemView {
                name: plain.name,
                format: self.format.clone(),
                content: plain.content,
                secret: false,
                masked: String::new(),
            }
        })
    }
}

/// Opens every item of a draft or release.
///
/// # Errors
/// A sealed value does not open.
pub async fn open_all(sealer: &Sealer, tenant: Uuid, items: &[StoredItem]) -> Result<Vec<PlainItem>> {
    let mut plain = Vec::with_capacity(items.len());
    for item in items {
        plain.push(item.open(sealer, tenant).await?);
    }
    Ok(plain)
}

/// Shows every item of a draft or release.
///
/// # Errors
/// A sealed value does not open.
pub async fn view_all(sealer: &Sealer, tenant: Uuid, items: &[StoredItem]) -> Result<Vec<ItemView>> {
    let mut views = Vec::with_capacity(items.len());
    for item in items {
        views.push(item.view(sealer, tenant).await?);
    }
    Ok(views)
}
