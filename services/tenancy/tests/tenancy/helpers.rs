//! A fresh tenancy schema per test, and builders for the hierarchy.

use std::collections::BTreeMap;

use kernel::caller::{Caller, Membership, Role};
use kernel::outbox::Outbox;
use kernel::testkit::TestPlatform;
use tenancy::partition::{LimitRange, NewPartition, Partition, Partitions};
use tenancy::project::{NewProject, Project, Projects};
use tenancy::quota::{Quotas, TenantQuota};
use tenancy::reservation::{Request, Reservations};
use tenancy::resource::ResourceList;
use tenancy::tenant::{NewTenant, Tenant, Tenants};
use uuid::Uuid;

pub struct World {
    pub tenants: Tenants,
    pub projects: Projects,
    pub partitions: Partitions,
    pub quotas: Quotas,
    pub reservations: Reservations,
    pub pool: sqlx::PgPool,
}

pub fn admin() -> Caller {
    Caller::platform_admin("test:admin")
}

pub fn member(tenant: Uuid, role: Role) -> Caller {
    Caller::user(format!("test:{role:?}"), vec![Membership { tenant, role }])
}

pub fn list(pairs: &[(&str, &str)]) -> ResourceList {
    let owned: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    ResourceList::parse("amounts", owned.iter().map(|(a, b)| (a, b))).unwrap()
}

impl World {
    pub async fn new() -> Self {
        Self::with_pool_size(8).await
    }

    pub async fn with_pool_size(size: u32) -> Self {
        let t = TestPlatform::new().await;
        let mut settings = t.settings.clone();
        settings.db_pool_size = size;
        let pool = kernel::db::connect(&settings, tenancy::NAME).await.unwrap();
        kernel::db::migrate(&pool, &tenancy::MIGRATIONS).await.unwrap();
        let outbox = Outbox::new(pool.clone());
        Self {
            tenants: Tenants::new(outbox.clone()),
            projects: Projects::new(outbox.clone()),
            partitions: Partitions::new(outbox.clone()),
            quotas: Quotas::new(outbox),
            reservations: Reservations::new(pool.clone()),
            pool,
        }
    }

    pub async fn tenant(&self, name: &str, hard: &[(&str, &str)]) -> Tenant {
        let t = self
            .tenants
            .create(&admin(), NewTenant::parse(name, "", "").unwrap())
            .await
            .unwrap();
        self.quotas
            .set_tenant(
                &admin(),
                t.id,
                &TenantQuota {
                    hard: list(hard),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        t
    }

    pub async fn project(&self, tenant: &Tenant, name: &str, hard: &[(&str, &str)]) -> Project {
        let p = self
            .projects
            .create(&admin(), tenant.id, NewProject::parse(name, "", "").unwrap())
            .await
            .unwrap();
        if !hard.is_empty() {
            self.quotas.set_project(&admin(), p.id, &list(hard)).await.unwrap();
        }
        p
    }

    pub async fn partition(&self, project: &Project, cluster: &str, hard: &[(&str, &str)]) -> Partition {
        let new = NewPartition::parse(cluster, &format!("dc-{cluster}"), "", BTreeMap::new(), "").unwrap();
        let p = self.partitions.create(&admin(), project.id, new).await.unwrap();
        if !hard.is_empty() {
            self.quotas
                .set_partition(&admin(), &p, &list(hard), LimitRange::default())
                .await
                .unwrap();
        }
        p
    }

    /// Used at a level, in milli-units, for one resource.
    pub async fn used(&self, level: &str, owner: Uuid, resource: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(sum(used), 0)::bigint FROM quotas WHERE level = $1 AND owner_id = $2 AND resource = $3",
        )
        .bind(level)
        .bind(owner)
        .bind(resource)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// What active reservations of a partition hold, recomputed from scratch.
    pub async fn held(&self, partition: Uuid, resource: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(sum((amounts ->> $2)::bigint), 0)::bigint FROM reservations WHERE partition_id = $1 AND state IN ('reserved', 'committed')",
        )
        .bind(partition)
        .bind(resource)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

pub fn ask(partition: Uuid, amounts: &[(&str, &str)], key: &str) -> Request {
    Request::parse(partition, list(amounts), key, 0, false).unwrap()
}
