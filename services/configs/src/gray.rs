//! Gray releases by labels. A gray release is the draft published to the
//! watchers whose registered labels match a selector (and, in clusters, to
//! chosen clusters and partitions, which delivery pins to it); everyone else
//! keeps the set's latest full release. It then ends one of two ways:
//! promoted (it becomes the release for all, without a new number, so the
//! watchers that have it hear nothing more) or abandoned (the watchers that
//! got it are sent back to the latest full release). One gray release at a
//! time per set, and no full release while it is in flight. Publishing and
//! promoting follow four eyes like a publish: the draft's last editor may do
//! neither. Each step is an outbox event (`configs.gray.*`) and a wake-up of
//! the set's watchers.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox;
use kernel::page::Page;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config_set::ConfigSet;
use crate::draft::lock_version;
use crate::release::{Kind, NOTIFY_CHANNEL, ReleaseWithItems, Releases, next_number};
use crate::selector::Selector;

/// `configs.gray.published`
pub const PUBLISHED: EventType = EventType::new("configs", "gray", "published");
/// `configs.gray.promoted`
pub const PROMOTED: EventType = EventType::new("configs", "gray", "promoted");
/// `configs.gray.abandoned`
pub const ABANDONED: EventType = EventType::new("configs", "gray", "abandoned");

/// Most cluster targets of one gray release.
const MAX_TARGETS: usize = 64;

/// Where in clusters a gray release goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrayTarget {
    /// The cluster's name.
    pub cluster: String,
    /// One partition in it; empty: all of its partitions.
    #[serde(default)]
    pub partition: String,
}

impl GrayTarget {
    /// A target from its parts.
    ///
    /// # Errors
    /// A name is not a DNS label; named `targets[i].cluster` / `.partition`.
    pub fn parse(index: usize, cluster: &str, partition: &str) -> Result<Self> {
        let cluster = DnsLabel::parse(&format!("targets[{index}].cluster"), cluster.trim())?.to_string();
        let partition = match partition.trim() {
            "" => String::new(),
            p => DnsLabel::parse(&format!("targets[{index}].partition"), p)?.to_string(),
        };
        Ok(Self { cluster, partition })
    }
}

/// Parses a gray release's targets (each once).
///
/// # Errors
/// A malformed or repeated target, or too many.
pub fn targets<'a>(raw: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<GrayTarget>> {
    let mut out: Vec<GrayTarget> = Vec::new();
    for (i, (cluster, partition)) in raw.into_iter().enumerate() {
        let target = GrayTarget::parse(i, cluster, partition)?;
        if out.contains(&target) {
            return Err(Error::invalid(format!("targets[{i}]"), "is given twice"));
        }
        out.push(target);
    }
    if out.len() > MAX_TARGETS {
        return Err(Error::invalid("targets", format!("at most {MAX_TARGETS}")));
    }
    Ok(out)
}

/// Where a gray release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrayState {
    /// Delivered to its selector's watchers and its targets.
    Active,
    /// The release for all.
    Promoted,
    /// Withdrawn: its watchers went back to the full release.
    Abandoned,
}

impl GrayState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Promoted => "promoted",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "promoted" => Self::Promoted,
            "abandoned" => Self::Abandoned,
            _ => Self::Active,
        }
    }
}

/// A gray release's rule.
#[derive(Debug, Clone)]
pub struct GrayRule {
    /// The release.
    pub release_id: Uuid,
    /// Its config set.
    pub config_set_id: Uuid,
    /// The release number.
    pub number: i64,
    /// Which watchers get it.
    pub selector: Selector,
    /// Which clusters / partitions get it.
    pub targets: Vec<GrayTarget>,
    /// The full release everyone else keeps.
    pub base: i64,
    /// Where it stands.
    pub state: GrayState,
    /// Who published it.
    pub author: String,
    /// Who promoted or abandoned it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

struct RuleRow {
    release_id: Uuid,
    config_set_id: Uuid,
    number: i64,
    selector: String,
    targets: serde_json::Value,
    base: i64,
    state: String,
    author: String,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl RuleRow {
    fn rule(self) -> Result<GrayRule> {
        Ok(GrayRule {
            release_id: self.release_id,
            config_set_id: self.config_set_id,
            number: self.number,
            selector: Selector::parse("selector", &self.selector)?,
            targets: serde_json::from_value(self.targets).map_err(Error::internal)?,
            base: self.base,
            state: GrayState::parse(&self.state),
            author: self.author,
            decided_by: self.decided_by,
            decided_at: self.decided_at,
            created_at: self.created_at,
        })
    }
}

impl GrayRule {
    fn event(&self, set: &ConfigSet, actor: &str) -> pb::ConfigGrayChanged {
        pb::ConfigGrayChanged {
            release_id: self.release_id.to_string(),
            config_set_id: set.id.to_string(),
            tenant_id: set.tenant_id.to_string(),
            application: set.application.clone(),
            environment: set.environment.clone(),
            cluster: set.cluster.clone(),
            number: u64::try_from(self.number).unwrap_or_default(),
            base: u64::try_from(self.base).unwrap_or_default(),
            selector: self.selector.to_string(),
            targets: self
                .targets
                .iter()
                .map(|t| pb::ConfigGrayTarget {
                    cluster: t.cluster.clone(),
                    partition: t.partition.clone(),
                })
                .collect(),
            state: self.state.as_str().to_string(),
            actor: actor.to_string(),
        }
    }
}

/// A gray release to publish.
#[derive(Debug, Clone)]
pub struct NewGray {
    /// Which watchers get it.
    pub selector: Selector,
    /// Which clusters / partitions get it.
    pub targets: Vec<GrayTarget>,
}

impl NewGray {
    /// A gray release aimed at `selector` and `targets`; at least one of them.
    ///
    /// # Errors
    /// Malformed, or aimed at nothing.
    pub fn parse<'a>(selector: &str, raw_targets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let selector = Selector::parse("selector", selector)?;
        let targets = targets(raw_targets)?;
        if selector.is_empty() && targets.is_empty() {
            return Err(Error::invalid(
                "selector",
                "say which watchers (a label selector such as zone=a,canary=true) or which clusters (targets) get it",
            ));
        }
        Ok(Self { selector, targets })
    }
}

async fn notify(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, set_id: Uuid) -> Result<()> {
    sqlx::query!("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, set_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Releases {
    /// Publishes the draft as a gray release for `gray`'s watchers and
    /// targets. Operators of the tenant; with four eyes, not the draft's last
    /// editor. Needs a full release for the others to keep.
    ///
    /// # Errors
    /// Not allowed, nothing to publish, no full release yet, a gray release
    /// already in flight, or the draft changed since `version`.
    pub async fn publish_gray(
        &self,
        caller: &Caller,
        set_id: Uuid,
        message_text: &str,
        version: i64,
        gray: NewGray,
    ) -> Result<ReleaseWithItems> {
        let message_text = message_text.trim();
        if message_text.is_empty() {
            return Err(Error::invalid("message", "say what this release changes"));
        }
        if message_text.chars().count() > 2000 {
            return Err(Error::invalid("message", "must be at most 2000 characters"));
        }
        let set = self.sets.get(caller, set_id).await?;
        caller.require(set.tenant_id, Role::Operator, "config set", set_id)?;
        let four_eyes = self.four_eyes(&set).await?;
        let mut tx = self.outbox.pool().begin().await?;
        let current = lock_version(&mut tx, set.tenant_id, set_id).await?;
        if version != 0 && version != current {
            return Err(Error::Conflict(format!(
                "the draft changed since it was reviewed (it is at version {current}, the publish names {version}): review it again"
            )));
        }
        if let Some(number) = sqlx::query_scalar!(
            "SELECT number FROM config_gray_rules WHERE config_set_id = $1 AND state = 'active'",
            set_id
        )
        .fetch_optional(&mut *tx)
        .await?
        {
            return Err(Error::FailedPrecondition(format!(
                "release {number} is already in gray release: promote or abandon it first"
            )));
        }
        let head = sqlx::query!(
            "SELECT last_editor, latest_release FROM config_sets WHERE id = $1",
            set_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if head.latest_release == 0 {
            return Err(Error::FailedPrecondition(
                "a gray release needs a full release for the other watchers to keep: publish one first".into(),
            ));
        }
        let Some(editor) = head.last_editor else {
            return Err(Error::FailedPrecondition(format!(
                "nothing to publish: the draft is release {} unchanged",
                head.latest_release
            )));
        };
        if four_eyes && editor == caller.subject {
            return Err(Error::PermissionDenied(format!(
                "four-eyes publishing is on for {}: the draft was last edited by {editor}, so someone else must publish it",
                if set.environment.is_empty() {
                    "this base set's environments"
                } else {
                    set.environment.as_str()
                }
            )));
        }
        let number = next_number(&mut tx, set_id).await?;
        let release = self
            .insert(&mut tx, &set, number, message_text, caller, Kind::Gray)
            .await?;
        sqlx::query!(
            "INSERT INTO config_release_items (release_id, name, format, secret, content, sealed)
             SELECT $1, name, format, secret, content, sealed FROM config_draft_items WHERE config_set_id = $2",
            release.id,
            set_id
        )
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as!(
            RuleRow,
            "INSERT INTO config_gray_rules
                 (release_id, config_set_id, tenant_id, number, selector, targets, base, editor, state, author)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9)
             RETURNING release_id, config_set_id, number, selector, targets, base, state, author,
                       decided_by, decided_at, created_at",
            release.id,
            set_id,
            set.tenant_id,
            number,
            gray.selector.to_string(),
            serde_json::to_value(&gray.targets).map_err(Error::internal)?,
            head.latest_release,
            editor,
            caller.subject,
        )
        .fetch_one(&mut *tx)
        .await?;
        let rule = row.rule()?;
        outbox::record(
            &mut tx,
            PUBLISHED,
            Some(set.tenant_id),
            &rule.event(&set, &caller.subject),
        )
        .await?;
        notify(&mut tx, set_id).await?;
        self.outbox.commit(tx).await?;
        self.with_items(release).await
    }

    /// Makes gray release `number` the release for all. Operators of the
    /// tenant; with four eyes, not the editor whose draft it holds.
    ///
    /// # Errors
    /// Not allowed, or `number` is not the set's gray release in flight.
    pub async fn promote_gray(&self, caller: &Caller, set_id: Uuid, number: i64) -> Result<ReleaseWithItems> {
        self.decide(caller, set_id, number, GrayState::Promoted).await
    }

    /// Withdraws gray release `number`: its watchers go back to the latest
    /// full release. Operators of the tenant. The draft keeps the gray
    /// release's content, marked as edited again by its editor, so it can be
    /// fixed and published anew.
    ///
    /// # Errors
    /// Not allowed, or `number` is not the set's gray release in flight.
    pub async fn abandon_gray(&self, caller: &Caller, set_id: Uuid, number: i64) -> Result<ReleaseWithItems> {
        self.decide(caller, set_id, number, GrayState::Abandoned).await
    }

    async fn decide(&self, caller: &Caller, set_id: Uuid, number: i64, to: GrayState) -> Result<ReleaseWithItems> {
        let set = self.sets.get(caller, set_id).await?;
        caller.require(set.tenant_id, Role::Operator, "config set", set_id)?;
        let four_eyes = to == GrayState::Promoted && self.four_eyes(&set).await?;
        let mut tx = self.outbox.pool().begin().await?;
        lock_version(&mut tx, set.tenant_id, set_id).await?;
        let active = sqlx::query!(
            "SELECT number, editor FROM config_gray_rules WHERE config_set_id = $1 AND tenant_id = $2 AND state = 'active'",
            set_id,
            set.tenant_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(active) = active.filter(|a| a.number == number) else {
            return Err(Error::not_found(
                "gray release",
                format!("{number} in flight in config set {set_id}"),
            ));
        };
        if four_eyes && active.editor == caller.subject {
            return Err(Error::PermissionDenied(format!(
                "four-eyes publishing is on for {}: gray release {number} holds {}'s edits, so someone else must promote it",
                if set.environment.is_empty() {
                    "this base set's environments"
                } else {
                    set.environment.as_str()
                },
                active.editor
            )));
        }
        let row = sqlx::query_as!(
            RuleRow,
            "UPDATE config_gray_rules SET state = $3, decided_by = $4, decided_at = now()
             WHERE config_set_id = $1 AND number = $2
             RETURNING release_id, config_set_id, number, selector, targets, base, state, author,
                       decided_by, decided_at, created_at",
            set_id,
            number,
            to.as_str(),
            caller.subject
        )
        .fetch_one(&mut *tx)
        .await?;
        if to == GrayState::Promoted {
            sqlx::query!(
                "UPDATE config_sets SET latest_release = $2 WHERE id = $1",
                set_id,
                number
            )
            .execute(&mut *tx)
            .await?;
        } else {
            // The draft still holds what was withdrawn: unpublished again.
            sqlx::query!(
                "UPDATE config_sets SET last_editor = COALESCE(last_editor, $2) WHERE id = $1",
                set_id,
                active.editor
            )
            .execute(&mut *tx)
            .await?;
        }
        let rule = row.rule()?;
        let kind = if to == GrayState::Promoted { PROMOTED } else { ABANDONED };
        outbox::record(&mut tx, kind, Some(set.tenant_id), &rule.event(&set, &caller.subject)).await?;
        notify(&mut tx, set_id).await?;
        self.outbox.commit(tx).await?;
        let release = self.find(&set, number).await?;
        self.with_items(release).await
    }

    /// The number of `set_id`'s gray release in flight when it targets
    /// `cluster` (the whole cluster or a partition of it).
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn gray_number_in(&self, set_id: Uuid, cluster: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!(
            "SELECT number FROM config_gray_rules
             WHERE config_set_id = $1 AND state = 'active'
               AND targets @> jsonb_build_array(jsonb_build_object('cluster', $2::text))",
            set_id,
            cluster
        )
        .fetch_optional(self.outbox.pool())
        .await?)
    }

    /// Where in clusters the gray releases in flight of `tenant`'s sets
    /// named `names` reach `environment`: the targets of its base and
    /// environment sets' rules, and of a cluster set's rule those in its own
    /// cluster (it applies nowhere else). Each target once.
    ///
    /// # Errors
    /// The database fails or a stored target does not parse.
    pub(crate) async fn gray_targets_in(
        &self,
        tenant: Uuid,
        names: &[String],
        environment: &str,
    ) -> Result<Vec<GrayTarget>> {
        let rows = sqlx::query!(
            "SELECT s.cluster, g.targets FROM config_gray_rules g JOIN config_sets s ON s.id = g.config_set_id
             WHERE g.tenant_id = $1 AND s.tenant_id = $1 AND g.state = 'active'
               AND s.application = ANY($2) AND (s.environment = '' OR s.environment = $3)
             ORDER BY g.created_at",
            tenant,
            names,
            environment
        )
        .fetch_all(self.outbox.pool())
        .await?;
        let mut out: Vec<GrayTarget> = Vec::new();
        for row in rows {
            let targets: Vec<GrayTarget> = serde_json::from_value(row.targets).map_err(Error::internal)?;
            for t in targets {
                if (row.cluster.is_empty() || row.cluster == t.cluster) && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// The rule of gray release `release_id`, if it is one.
    ///
    /// # Errors
    /// The database fails.
    pub async fn gray_rule(&self, release_id: Uuid) -> Result<Option<GrayRule>> {
        sqlx::query_as!(
            RuleRow,
            "SELECT release_id, config_set_id, number, selector, targets, base, state, author,
                    decided_by, decided_at, created_at
             FROM config_gray_rules WHERE release_id = $1",
            release_id
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .map(RuleRow::rule)
        .transpose()
    }

    /// A page of a set's gray rules, oldest first. Members of the tenant.
    ///
    /// # Errors
    /// The set is not visible.
    pub async fn gray_rules(&self, caller: &Caller, set_id: Uuid, page: Page) -> Result<(Vec<GrayRule>, String)> {
        let set = self.sets.get(caller, set_id).await?;
        let rows = sqlx::query_as!(
            RuleRow,
            "SELECT release_id, config_set_id, number, selector, targets, base, state, author,
                    decided_by, decided_at, created_at
             FROM config_gray_rules
             WHERE config_set_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR release_id > $3)
             ORDER BY release_id LIMIT $4",
            set.id,
            set.tenant_id,
            page.after,
            page.fetch()
        )
        .fetch_all(self.outbox.pool())
        .await?;
        let rules = rows.into_iter().map(RuleRow::rule).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(rules, |r| r.release_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gray_release_must_aim_at_watchers_or_clusters() {
        let none: [(&str, &str); 0] = [];
        let e = NewGray::parse(" ", none).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { ref field, .. } if field == "selector"));
        assert!(NewGray::parse("zone=a", none).is_ok());
        let gray = NewGray::parse("", [("eu-1", ""), ("us-1", "blue")]).unwrap();
        assert_eq!(gray.targets[1].partition, "blue");
    }

    #[test]
    fn a_bad_target_names_its_place() {
        let e = NewGray::parse("zone=a", [("eu-1", ""), ("Not A Label", "")]).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { ref field, .. } if field == "targets[1].cluster"),
            "{e:?}"
        );
        let e = NewGray::parse("zone=a", [("eu-1", ""), ("eu-1", "")]).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { ref field, .. } if field == "targets[1]"),
            "{e:?}"
        );
    }
}
