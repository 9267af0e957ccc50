//! The roles a session's user holds, resolved again while the session lives
//! rather than frozen at login: removing a member, changing its role, or
//! deleting or suspending its tenant reaches live sessions within seconds.
//!
//! A subject's memberships, resolved by tenancy, are kept in memory for at
//! most [`CACHE_FOR`]; tenancy's member and tenant events (on NATS) forget
//! them at once in every gateway, and a login forgets its user's (its groups
//! may have changed). A gateway that loses its NATS connection forgets every
//! cached entry, in case it missed a change.
//!
//! API tokens belong to one tenant, so their role is checked against the
//! tenant's state the same way ([`Memberships::live`]): a deleted tenant's
//! token stands for nothing, a suspended tenant's reads only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kernel::caller::{Caller, CallerKey, Membership, Role};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::upstream::Upstream;

/// The longest resolved memberships are trusted without asking tenancy again.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// Beyond this many cached subjects the cache starts over.
const CACHE_LIMIT: usize = 100_000;
/// Events after which cached memberships may be wrong.
const CHANGES: [&str; 2] = ["tenancy.member.>", "tenancy.tenant.>"];

/// A subject's memberships and when they were resolved.
type Resolved = (Vec<Membership>, Instant);

/// A tenant's state as tenancy last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantState {
    /// Its members act with their roles.
    Active,
    /// Read-only: its members act as viewers.
    Suspended,
    /// Deleted (or never was): membership in it grants nothing.
    Gone,
}

/// Subjects' memberships, as tenancy resolves them.
#[derive(Clone)]
pub struct Memberships {
    upstream: Upstream,
    key: CallerKey,
    cache: Arc<Mutex<HashMap<String, Resolved>>>,
    tenants: Arc<Mutex<HashMap<Uuid, (TenantState, Instant)>>>,
}

impl Memberships {
    /// Memberships resolved through `upstream`'s tenancy, signed with `key`.
    pub fn new(upstream: Upstream, key: CallerKey) -> Self {
        Self {
            upstream,
            key,
            cache: Arc::default(),
            tenants: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resolved>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tenants `subject` belongs to now and its role in each.
    ///
    /// # Errors
    /// Tenancy is unavailable.
    pub async fn of(&self, subject: &str) -> Result<Vec<Membership>, ApiError> {
        if let Some((memberships, _)) = self
            .cache()
            .get(subject)
            .filter(|(_, read_at)| read_at.elapsed() < CACHE_FOR)
        {
            return Ok(memberships.clone());
        }
        let resolved = self
            .upstream
            .tenancy(&self.key, &Caller::service("gateway"))
            .resolve_memberships(paas_proto::v1::ResolveMembershipsRequest {
                subject: subject.to_string(),
            })
            .await?
            .into_inner();
        let memberships: Vec<Membership> = resolved
            .memberships
            .into_iter()
            .filter_map(|m| {
                let tenant = uuid::Uuid::parse_str(&m.tenant_id).ok()?;
                let role = Role::parse("role", &m.role).ok()?;
                Some(Membership { tenant, role })
            })
            .collect();
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(subject.to_string(), (memberships.clone(), Instant::now()));
        Ok(memberships)
    }

    /// `memberships` (an API token's) as they stand now: none in a deleted
    /// tenant, viewer in a suspended one.
    ///
    /// # Errors
    /// Tenancy is unavailable.
    pub async fn live(&self, memberships: Vec<Membership>) -> Result<Vec<Membership>, ApiError> {
        let mut live = Vec::with_capacity(memberships.len());
        for m in memberships {
            match self.tenant_state(m.tenant).await? {
                TenantState::Active => live.push(m),
                TenantState::Suspended => live.push(Membership {
                    role: Role::Viewer,
                    ..m
                }),
                TenantState::Gone => {}
            }
        }
        Ok(live)
    }

    /// Whether `tenant` is active, suspended or gone.
    ///
    /// # Errors
    /// Tenancy is unavailable.
    pub async fn tenant_state(&self, tenant: Uuid) -> Result<TenantState, ApiError> {
        if let Some((state, _)) = self
            .tenants()
            .get(&tenant)
            .filter(|(_, read_at)| read_at.elapsed() < CACHE_FOR)
        {
            return Ok(*state);
        }
        let state = match self
            .upstream
            .tenancy(&self.key, &Caller::service("gateway"))
            .get_tenant(paas_proto::v1::GetTenantRequest { id: tenant.to_string() })
            .await
        {
            Ok(t) if t.get_ref().status == paas_proto::v1::TenantStatus::Suspended as i32 => TenantState::Suspended,
            Ok(_) => TenantState::Active,
            Err(s) if s.code() == tonic::Code::NotFound => TenantState::Gone,
            Err(s) => return Err(s.into()),
        };
        let mut tenants = self.tenants();
        if tenants.len() >= CACHE_LIMIT {
            tenants.clear();
        }
        tenants.insert(tenant, (state, Instant::now()));
        Ok(state)
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (TenantState, Instant)>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.tenants.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets what is cached for `subject` (every subject, and every
    /// tenant's state, with `None`).
    pub fn forget(&self, subject: Option<&str>) {
        match subject {
            Some(subject) => {
                self.cache().remove(subject);
            }
            None => {
                self.cache().clear();
                self.tenants().clear();
            }
        }
    }

    /// Forgets every cached membership whenever tenancy announces a member
    /// or tenant change, until `stop`. A lost connection is reopened after
    /// a pause, forgetting everything, since changes may have been missed.
    ///
    /// # Errors
    /// Never: NATS failures are retried (cached entries still expire).
    pub async fn follow_changes(
        self,
        platform: kernel::settings::Platform,
        stop: CancellationToken,
    ) -> kernel::Result<()> {
        let backoff = kernel::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut failures = 0;
        while !stop.is_cancelled() {
            match self.follow_once(&platform, &stop).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.forget(None);
                    tracing::warn!(error = %e, "not following membership changes; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff.delay(failures)) => {}
                    }
                    failures = failures.saturating_add(1);
                }
            }
        }
        Ok(())
    }

    async fn follow_once(&self, platform: &kernel::settings::Platform, stop: &CancellationToken) -> kernel::Result<()> {
        let bus = kernel::event::Bus::connect(platform).await?;
        let mut changes = Vec::new();
        for subject in CHANGES {
            changes.push(
                bus.client
                    .subscribe(bus.subject(subject))
                    .await
                    .map_err(|e| kernel::Error::Unavailable(format!("cannot subscribe to {subject}: {e}")))?,
            );
        }
        // Anything that changed before the subscriptions started is missed.
        self.forget(None);
        let mut changes = futures::stream::select_all(changes);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                change = changes.next() => match change {
                    Some(_) => self.forget(None),
                    None => return Err(kernel::Error::Unavailable("the NATS connection closed".into())),
                },
            }
        }
    }
}
