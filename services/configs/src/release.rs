//! Releases: immutable, numbered snapshots of a config set's draft. Operators
//! of the tenant publish (edit and publish are separate rights); where the
//! environment asks for four eyes, the publisher must not be the draft's last
//! editor. A rollback is itself a new release holding an earlier one's items.
//! Each release is announced twice in its transaction: as an outbox event
//! (`configs.release.published` / `configs.release.rolled_back`) for other
//! services, and as a PostgreSQL notification that wakes watchers
//! ([`crate::watch`]) on every instance of this service.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

use crate::config_set::{ConfigSet, ConfigSets};
use crate::draft::lock_version;
use crate::effective::{self, Entry, ItemChange, Layer};
use crate::environment::EnvironmentPolicies;
use crate::gray::GrayRule;
use crate::item::{ItemView, StoredItem, open_all, view_all};
use crate::link::Links;
use crate::secret::{Sealer, mask};
use crate::selector::Selector;
use crate::watch::{SetState, WINDOW, release_payload};

/// `configs.release.published`
pub const PUBLISHED: EventType = EventType::new("configs", "release", "published");
/// `configs.release.rolled_back`
pub const ROLLED_BACK: EventType = EventType::new("configs", "release", "rolled_back");

/// The PostgreSQL notification channel a new release is announced on; the
/// payload carries the release ([`crate::watch::release_payload`]), or is
/// the config set's id alone after a gray step.
pub const NOTIFY_CHANNEL: &str = "paas_configs_releases";

/// Longest release message accepted.
const MAX_MESSAGE: usize = 2000;

/// A release as stored (its items apart).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Release {
    /// Its id.
    pub id: Uuid,
    /// Its config set.
    pub config_set_id: Uuid,
    /// The set's tenant.
    pub tenant_id: Uuid,
    /// Its number in the set, from 1.
    pub number: i64,
    /// Why it was made.
    pub message: String,
    /// Who made it.
    pub author: String,
    /// `publish` or `rollback`.
    pub kind: String,
    /// For a rollback, the release it restores; else 0.
    pub restores: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A release with its items, secret ones masked.
#[derive(Debug, Clone)]
pub struct ReleaseWithItems {
    /// The release.
    pub release: Release,
    /// Its items.
    pub items: Vec<ItemView>,
    /// For a gray release, its rule.
    pub gray: Option<GrayRule>,
}

/// The difference between two releases of a set.
#[derive(Debug, Clone)]
pub struct Diff {
    /// The earlier release (0: nothing).
    pub from: i64,
    /// The later release.
    pub to: i64,
    /// What changed, secret values masked.
    pub items: Vec<ItemChange>,
}

/// A release a watcher is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The config set.
    pub config_set_id: Uuid,
    /// The release number.
    pub number: i64,
    /// The release id.
    pub release_id: Uuid,
    /// `publish`, `rollback`, `gray` (this watcher's gray release) or
    /// `promoted` (a gray release now everyone's).
    pub kind: String,
}

/// An application's effective configuration and the sets it is built from.
#[derive(Debug, Clone)]
pub struct Effective {
    /// By item, then key.
    pub entries: Vec<Entry>,
    /// Every set at the application's levels (and its shared sets'), released
    /// or not, lowest first.
    pub sources: Vec<Source>,
    /// The releases read, lowest first: `app/production@4`, with ` (gray)`
    /// for a gray release in flight.
    pub releases: Vec<String>,
}

/// Which effective configuration: a tenant's application at an
/// environment (empty: the base level) and cluster (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tenant.
    pub tenant: Uuid,
    /// The application.
    pub application: String,
    /// The environment.
    pub environment: String,
    /// The cluster.
    pub cluster: String,
}

/// A set an effective configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The config set.
    pub set_id: Uuid,
    /// How people name it: `app/production`.
    pub origin: String,
    /// Its latest release, 0 before the first.
    pub latest_release: u64,
}

fn message(raw: &str, field: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.chars().count() > MAX_MESSAGE {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_MESSAGE} characters"),
        ));
    }
    Ok(raw.to_string())
}

/// Releases in the configs schema.
#[derive(Clone)]
pub struct Releases {
    pub(crate) outbox: Outbox,
    pub(crate) sets: ConfigSets,
    pub(crate) sealer: Sealer,
    policies: EnvironmentPolicies,
    links: Links,
}

impl Releases {
    /// Releases of `sets`.
    pub fn new(outbox: Outbox, sets: ConfigSets, sealer: Sealer, policies: EnvironmentPolicies, links: Links) -> Self {
        Self {
            outbox,
            sets,
            sealer,
            policies,
            links,
        }
    }

    pub(crate) async fn four_eyes(&self, set: &ConfigSet) -> Result<bool> {
        if set.environment.is_empty() {
            self.policies.four_eyes_for_base(set.tenant_id, &set.application).await
        } else {
            self.policies.four_eyes(set.tenant_id, &set.environment).await
        }
    }

    /// Publishes the draft as the next release. Operators of the tenant; with
    /// four eyes, not the draft's last editor. `version` (when not 0) is the
    /// draft version the publisher reviewed.
    ///
    /// # Errors
    /// Not allowed, nothing to publish, or the draft changed since `version`.
    pub async fn publish(
        &self,
        caller: &Caller,
        set_id: Uuid,
        message_text: &str,
        version: i64,
    ) -> Result<ReleaseWithItems> {
        let message_text = message(message_text, "message")?;
        if message_text.is_empty() {
            return Err(Error::invalid("message", "say what this release changes"));
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
        no_gray_in_flight(&mut tx, set_id).await?;
        let head = sqlx::query!(
            "SELECT last_editor, latest_release FROM config_sets WHERE id = $1",
            set_id
        )
        .fetch_one(&mut *tx)
        .await?;
        let Some(last_editor) = head.last_editor else {
            return Err(Error::FailedPrecondition(if head.latest_release == 0 {
                "nothing to publish: the draft has no edits".to_string()
            } else {
                format!(
                    "nothing to publish: the draft is release {} unchanged",
                    head.latest_release
                )
            }));
        };
        if four_eyes && last_editor == caller.subject {
            return Err(Error::PermissionDenied(format!(
                "four-eyes publishing is on for {}: the draft was last edited by {last_editor}, so someone else must publish it",
                if set.environment.is_empty() {
                    "this base set's environments"
                } else {
                    set.environment.as_str()
                }
            )));
        }
        let number = next_number(&mut tx, set_id).await?;
        let release = self
            .insert(&mut tx, &set, number, &message_text, caller, Kind::Publish)
            .await?;
        sqlx::query!(
            "INSERT INTO config_release_items (release_id, name, format, secret, content, sealed)
             SELECT $1, name, format, secret, content, sealed FROM config_draft_items WHERE config_set_id = $2",
            release.id,
            set_id
        )
        .execute(&mut *tx)
        .await?;
        self.announce(&mut tx, &set, &release, PUBLISHED).await?;
        self.outbox.commit(tx).await?;
        self.with_items(release).await
    }

    /// Makes a new release holding release `to`'s items, and resets the draft
    /// to them. Operators of the tenant.
    ///
    /// # Errors
    /// Not allowed; `to` names no release of the set (not found), its
    /// latest (a failed precondition) or a gray release never promoted.
    pub async fn rollback(
        &self,
        caller: &Caller,
        set_id: Uuid,
        to: i64,
        message_text: &str,
    ) -> Result<ReleaseWithItems> {
        let message_text = message(message_text, "message")?;
        let set = self.sets.get(caller, set_id).await?;
        caller.require(set.tenant_id, Role::Operator, "config set", set_id)?;
        let mut tx = self.outbox.pool().begin().await?;
        lock_version(&mut tx, set.tenant_id, set_id).await?;
        no_gray_in_flight(&mut tx, set_id).await?;
        let latest = sqlx::query_scalar!("SELECT latest_release FROM config_sets WHERE id = $1", set_id)
            .fetch_one(&mut *tx)
            .await?;
        // A release that does not exist is not found (like an id naming
        // nothing); the latest is there but is no rollback.
        if to < 1 {
            return Err(Error::invalid("to", "releases count from 1"));
        }
        if to > latest {
            return Err(Error::not_found("release", format!("{to} of config set {set_id}")));
        }
        if to == latest {
            return Err(Error::FailedPrecondition(format!(
                "release {to} is the set's latest: roll back to an earlier one"
            )));
        }
        // Only a release that was once everyone's: not a gray one that was abandoned.
        let source = sqlx::query_scalar!(
            "SELECT r.id FROM config_releases r LEFT JOIN config_gray_rules g ON g.release_id = r.id
             WHERE r.config_set_id = $1 AND r.number = $2 AND (r.kind <> 'gray' OR g.state = 'promoted')",
            set_id,
            to
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::invalid("to", format!("release {to} was a gray release never promoted")))?;
        let message_text = if message_text.is_empty() {
            format!("rollback to release {to}")
        } else {
            message_text
        };
        let number = next_number(&mut tx, set_id).await?;
        let release = self
            .insert(&mut tx, &set, number, &message_text, caller, Kind::Rollback(to))
            .await?;
        sqlx::query!(
            "INSERT INTO config_release_items (release_id, name, format, secret, content, sealed)
             SELECT $1, name, format, secret, content, sealed FROM config_release_items WHERE release_id = $2",
            release.id,
            source
        )
        .execute(&mut *tx)
        .await?;
        // The draft follows, so the next publish does not bring back what was rolled back.
        sqlx::query!("DELETE FROM config_draft_items WHERE config_set_id = $1", set_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT INTO config_draft_items (config_set_id, name, format, secret, content, sealed)
             SELECT $1, name, format, secret, content, sealed FROM config_release_items WHERE release_id = $2",
            set_id,
            source
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE config_sets SET draft_version = draft_version + 1 WHERE id = $1",
            set_id
        )
        .execute(&mut *tx)
        .await?;
        self.announce(&mut tx, &set, &release, ROLLED_BACK).await?;
        self.outbox.commit(tx).await?;
        self.with_items(release).await
    }

    pub(crate) async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        set: &ConfigSet,
        number: i64,
        message_text: &str,
        caller: &Caller,
        kind: Kind,
    ) -> Result<Release> {
        let (kind_name, restores) = match kind {
            Kind::Publish => ("publish", 0),
            Kind::Rollback(to) => ("rollback", to),
            Kind::Gray => ("gray", 0),
        };
        let release = sqlx::query_as!(
            Release,
            "INSERT INTO config_releases (id, config_set_id, tenant_id, number, message, author, kind, restores)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, config_set_id, tenant_id, number, message, author, kind, restores, created_at",
            id::new_id(),
            set.id,
            set.tenant_id,
            number,
            message_text,
            caller.subject,
            kind_name,
            restores,
        )
        .fetch_one(&mut **tx)
        .await?;
        // A gray release leaves everyone else on the latest full release.
        let latest = if kind == Kind::Gray {
            set_latest(tx, set.id).await?
        } else {
            number
        };
        sqlx::query!(
            "UPDATE config_sets SET latest_release = $2, last_editor = NULL WHERE id = $1",
            set.id,
            latest
        )
        .execute(&mut **tx)
        .await?;
        Ok(release)
    }

    pub(crate) async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        set: &ConfigSet,
        release: &Release,
        kind: EventType,
    ) -> Result<()> {
        let event = pb::ConfigReleased {
            release_id: release.id.to_string(),
            config_set_id: set.id.to_string(),
            tenant_id: set.tenant_id.to_string(),
            application: set.application.clone(),
            environment: set.environment.clone(),
            cluster: set.cluster.clone(),
            number: u64::try_from(release.number).unwrap_or_default(),
            restores: u64::try_from(release.restores).unwrap_or_default(),
            author: release.author.clone(),
        };
        outbox::record(tx, kind, Some(set.tenant_id), &event).await?;
        // Delivered at commit, to every listening instance; the release
        // itself rides along, so a watcher's feed needs no read to add it.
        let payload = release_payload(&Notice {
            config_set_id: set.id,
            number: release.number,
            release_id: release.id,
            kind: release.kind.clone(),
        });
        sqlx::query!("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub(crate) async fn items_of(&self, release: Uuid) -> Result<Vec<StoredItem>> {
        Ok(sqlx::query_as!(
            StoredItem,
            "SELECT name, format, secret, content, sealed FROM config_release_items WHERE release_id = $1 ORDER BY name",
            release
        )
        .fetch_all(self.outbox.pool())
        .await?)
    }

    pub(crate) async fn with_items(&self, release: Release) -> Result<ReleaseWithItems> {
        let items = self.items_of(release.id).await?;
        let items = view_all(&self.sealer, release.tenant_id, &items).await?;
        let gray = if release.kind == "gray" {
            self.gray_rule(release.id).await?
        } else {
            None
        };
        Ok(ReleaseWithItems { release, items, gray })
    }

    pub(crate) async fn find(&self, set: &ConfigSet, number: i64) -> Result<Release> {
        sqlx::query_as!(
            Release,
            "SELECT id, config_set_id, tenant_id, number, message, author, kind, restores, created_at
             FROM config_releases WHERE config_set_id = $1 AND tenant_id = $2 AND number = $3",
            set.id,
            set.tenant_id,
            number
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::not_found("release", format!("{} of config set {}", number, set.id)))
    }

    /// One release with its items. Members of the tenant.
    ///
    /// # Errors
    /// The set or release is not visible.
    pub async fn get(&self, caller: &Caller, set_id: Uuid, number: i64) -> Result<ReleaseWithItems> {
        let set = self.sets.get(caller, set_id).await?;
        let release = self.find(&set, number).await?;
        self.with_items(release).await
    }

    /// A page of a set's history, oldest first. Members of the tenant.
    ///
    /// # Errors
    /// The set is not visible.
    pub async fn list(&self, caller: &Caller, set_id: Uuid, page: Page) -> Result<(Vec<Release>, String)> {
        let set = self.sets.get(caller, set_id).await?;
        let rows = sqlx::query_as!(
            Release,
            "SELECT id, config_set_id, tenant_id, number, message, author, kind, restores, created_at
             FROM config_releases
             WHERE config_set_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
            set.id,
            set.tenant_id,
            page.after,
            page.fetch()
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// What changed from release `from` (0: the empty set) to release `to`,
    /// per item and per key; secret values masked. Members of the tenant.
    ///
    /// # Errors
    /// The set or a release is not visible.
    pub async fn diff(&self, caller: &Caller, set_id: Uuid, from: i64, to: i64) -> Result<Diff> {
        let set = self.sets.get(caller, set_id).await?;
        let plain = |number: i64| {
            let set = &set;
            async move {
                if number == 0 {
                    return Ok(Vec::new());
                }
                let release = self.find(set, number).await?;
                open_all(&self.sealer, set.tenant_id, &self.items_of(release.id).await?).await
            }
        };
        let before = plain(from).await?;
        let after = plain(to).await?;
        let mut items = effective::diff(&before, &after);
        for change in items.iter_mut().filter(|c| c.secret) {
            change.before = masked_if_set(&change.before);
            change.after = masked_if_set(&change.after);
            for key in &mut change.keys {
                key.before = masked_if_set(&key.before);
                key.after = masked_if_set(&key.after);
            }
        }
        Ok(Diff { from, to, items })
    }

    /// The effective configuration of `application` in `environment` and
    /// `cluster` (both may be empty): every key and file with its origin,
    /// from the latest releases; secret values masked. Members of the tenant.
    ///
    /// # Errors
    /// Malformed input, or the tenant is not visible.
    pub async fn effective(
        &self,
        caller: &Caller,
        tenant: &str,
        application: &str,
        environment: &str,
        cluster: &str,
    ) -> Result<Effective> {
        let scope = self.scope(caller, tenant, application, environment, cluster)?;
        let mut effective = self
            .merged(
                scope.tenant,
                &scope.application,
                &scope.environment,
                &scope.cluster,
                None,
            )
            .await?;
        for entry in effective.entries.iter_mut().filter(|e| e.secret) {
            entry.value = mask(&entry.value);
        }
        Ok(effective)
    }

    /// Which effective configuration `caller` asks for; members of the tenant.
    ///
    /// # Errors
    /// Malformed input (naming the field), or the tenant is not visible.
    pub fn scope(
        &self,
        caller: &Caller,
        tenant: &str,
        application: &str,
        environment: &str,
        cluster: &str,
    ) -> Result<Scope> {
        let tenant = id::parse_id("tenant_id", tenant)?;
        let application = DnsLabel::parse("application", application.trim())?;
        let optional = |field: &str, raw: &str| -> Result<String> {
            let raw = raw.trim();
            if raw.is_empty() {
                Ok(String::new())
            } else {
                Ok(DnsLabel::parse(field, raw)?.to_string())
            }
        };
        let environment = optional("environment", environment)?;
        let cluster = optional("cluster", cluster)?;
        if environment.is_empty() && !cluster.is_empty() {
            return Err(Error::invalid("cluster", "needs an environment"));
        }
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        Ok(Scope {
            tenant,
            application: application.to_string(),
            environment,
            cluster,
        })
    }

    /// The schema's pool.
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        self.outbox.pool()
    }

    /// The names whose sets make `application`'s configuration, lowest first:
    /// the shared sets it links, then its own.
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn layer_names(&self, tenant: Uuid, application: &str) -> Result<Vec<String>> {
        let mut names = self.links.of(tenant, application).await?;
        names.push(application.to_string());
        Ok(names)
    }

    /// The sets an application's configuration is built from at an
    /// environment and cluster, lowest first: each linked shared set, then
    /// its own, each at the base, environment and cluster levels that exist.
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn layout(
        &self,
        tenant: Uuid,
        application: &str,
        environment: &str,
        cluster: &str,
    ) -> Result<Vec<ConfigSet>> {
        let (environment, cluster) = (environment.to_string(), cluster.to_string());
        let names = self.layer_names(tenant, application).await?;
        let mut levels = vec![(String::new(), String::new())];
        if !environment.is_empty() {
            levels.push((environment.clone(), String::new()));
            if !cluster.is_empty() {
                levels.push((environment.clone(), cluster.clone()));
            }
        }
        let mut sets = Vec::new();
        for name in &names {
            for (env, cl) in &levels {
                let set = sqlx::query_as!(
                    ConfigSet,
                    "SELECT id, tenant_id, application, environment, created_at, cluster, shared, latest_release
                     FROM config_sets
                     WHERE tenant_id = $1 AND application = $2 AND environment = $3 AND cluster = $4",
                    tenant,
                    name,
                    env,
                    cl
                )
                .fetch_optional(self.outbox.pool())
                .await?;
                sets.extend(set);
            }
        }
        Ok(sets)
    }

    /// The effective configuration in the clear (secrets opened): for
    /// delivery and, masked, for people. Callers check access first.
    ///
    /// # Errors
    /// The database fails or a secret cannot be opened.
    ///
    /// With `gray_in`, a set whose gray release in flight targets that
    /// cluster (any partition of it) gives its gray release instead of its
    /// latest full one: what delivery pins there ([`crate::delivery`]).
    pub(crate) async fn merged(
        &self,
        tenant: Uuid,
        application: &str,
        environment: &str,
        cluster: &str,
        gray_in: Option<&str>,
    ) -> Result<Effective> {
        let mut layers = Vec::new();
        let mut sources = Vec::new();
        let mut releases = Vec::new();
        for set in self.layout(tenant, application, environment, cluster).await? {
            // A set without a release gives nothing yet, but its first
            // release changes the configuration: a client watches it too.
            sources.push(Source {
                set_id: set.id,
                origin: set.address(),
                latest_release: u64::try_from(set.latest_release).unwrap_or_default(),
            });
            if set.latest_release == 0 {
                continue;
            }
            let number = match gray_in {
                Some(target) => self.gray_number_in(set.id, target).await?.unwrap_or(set.latest_release),
                None => set.latest_release,
            };
            let release = self.find(&set, number).await?;
            let gray = if number == set.latest_release { "" } else { " (gray)" };
            releases.push(format!("{}@{number}{gray}", set.address()));
            let items = open_all(&self.sealer, tenant, &self.items_of(release.id).await?).await?;
            layers.push(Layer {
                set_id: set.id,
                origin: set.address(),
                release: u64::try_from(number).unwrap_or_default(),
                items,
            });
        }
        Ok(Effective {
            entries: effective::merge(&layers),
            sources,
            releases,
        })
    }

    /// The full releases of a set after `after`, oldest first (at most
    /// `limit`), for a watcher catching up; its caller was checked when it
    /// started.
    ///
    /// # Errors
    /// The database fails.
    pub async fn full_after(&self, set_id: Uuid, after: i64, limit: i64) -> Result<Vec<Notice>> {
        let rows = sqlx::query!(
            r#"SELECT r.id, r.number, r.kind, g.state AS "state?"
               FROM config_releases r LEFT JOIN config_gray_rules g ON g.release_id = r.id
               WHERE r.config_set_id = $1 AND r.number > $2 AND (r.kind <> 'gray' OR g.state = 'promoted')
               ORDER BY r.number LIMIT $3"#,
            set_id,
            after,
            limit
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| notice(set_id, r.id, r.number, &r.kind, r.state.as_deref()))
            .collect())
    }

    /// What every watcher of a set needs: its latest full releases, its
    /// highest number and its gray release in flight. Read once per change
    /// and shared by the set's watchers ([`crate::watch`]).
    ///
    /// # Errors
    /// The database fails, or a stored selector does not parse.
    pub async fn watch_state(&self, set_id: Uuid) -> Result<SetState> {
        let mut tx = self.outbox.pool().begin().await?;
        // One snapshot of the three reads.
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query!(
            r#"SELECT r.id, r.number, r.kind, g.state AS "state?"
               FROM config_releases r LEFT JOIN config_gray_rules g ON g.release_id = r.id
               WHERE r.config_set_id = $1 AND (r.kind <> 'gray' OR g.state = 'promoted')
               ORDER BY r.number DESC LIMIT $2"#,
            set_id,
            WINDOW
        )
        .fetch_all(&mut *tx)
        .await?;
        let max_number = sqlx::query_scalar!(
            r#"SELECT COALESCE(MAX(number), 0) AS "max!" FROM config_releases WHERE config_set_id = $1"#,
            set_id
        )
        .fetch_one(&mut *tx)
        .await?;
        let gray = sqlx::query!(
            "SELECT release_id, number, selector FROM config_gray_rules WHERE config_set_id = $1 AND state = 'active'",
            set_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let floor = if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= WINDOW {
            rows.last().map_or(0, |r| r.number - 1)
        } else {
            0
        };
        let mut full: Vec<Notice> = rows
            .into_iter()
            .map(|r| notice(set_id, r.id, r.number, &r.kind, r.state.as_deref()))
            .collect();
        full.reverse();
        let gray = match gray {
            Some(g) => Some((
                notice(set_id, g.release_id, g.number, "gray", Some("active")),
                Selector::parse("selector", &g.selector)?,
            )),
            None => None,
        };
        Ok(SetState {
            full,
            floor,
            max_number,
            gray,
            gone: false,
        })
    }
}

/// A watcher's notice of a release; a promoted gray release says so.
fn notice(set_id: Uuid, id: Uuid, number: i64, kind: &str, gray_state: Option<&str>) -> Notice {
    Notice {
        config_set_id: set_id,
        number,
        release_id: id,
        kind: match (kind, gray_state) {
            ("gray", Some("promoted")) => "promoted".to_string(),
            (kind, _) => kind.to_string(),
        },
    }
}

/// What a new release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The draft, for everyone.
    Publish,
    /// An earlier release's items again, for everyone.
    Rollback(i64),
    /// The draft, for the watchers a selector matches.
    Gray,
}

/// The next release number of a set (gray releases take numbers too).
pub(crate) async fn next_number(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, set_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT COALESCE(MAX(number), 0) AS "max!" FROM config_releases WHERE config_set_id = $1"#,
        set_id
    )
    .fetch_one(&mut **tx)
    .await?
        + 1)
}

async fn set_latest(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, set_id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar!("SELECT latest_release FROM config_sets WHERE id = $1", set_id)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Refuses a full release while a gray one is in flight: it would be unclear
/// which of the two the gray watchers should hold.
async fn no_gray_in_flight(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, set_id: Uuid) -> Result<()> {
    let gray = sqlx::query_scalar!(
        "SELECT number FROM config_gray_rules WHERE config_set_id = $1 AND state = 'active'",
        set_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    match gray {
        Some(number) => Err(Error::FailedPrecondition(format!(
            "release {number} is in gray release: promote or abandon it first"
        ))),
        None => Ok(()),
    }
}

fn masked_if_set(value: &str) -> String {
    if value.is_empty() { String::new() } else { mask(value) }
}
