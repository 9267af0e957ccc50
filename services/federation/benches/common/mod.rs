//! What the federation benches share: quota admission that grants all (the
//! figures are federation's alone) and a member cluster registered with a
//! partition of the bench's tenant.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use federation::binding::Admission;
use federation::settings::SecretKey;
use kernel::caller::Caller;
use kernel::outbox::Outbox;
use uuid::Uuid;

/// Grants every reservation.
pub struct GrantAll;

impl Admission for GrantAll {
    fn reserve<'a>(
        &'a self,
        _p: Uuid,
        _a: &'a BTreeMap<String, String>,
        _k: &'a str,
    ) -> Pin<Box<dyn Future<Output = kernel::Result<Uuid>> + Send + 'a>> {
        Box::pin(async { Ok(Uuid::now_v7()) })
    }
    fn commit(&self, _r: Uuid) -> Pin<Box<dyn Future<Output = kernel::Result<()>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
    fn release(&self, _r: Uuid) -> Pin<Box<dyn Future<Output = kernel::Result<()>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

/// Registers cluster `name` at `url` in data centre `dc`, with a partition
/// (namespace `acme-web`) of `tenant` there, as federation knows it from
/// tenancy's events.
pub async fn register_member(
    outbox: &Outbox,
    key: &SecretKey,
    tenant: Uuid,
    name: &str,
    url: String,
    dc: String,
) -> anyhow::Result<()> {
    let new = federation::cluster::NewCluster::parse(paas_proto::v1::RegisterClusterRequest {
        name: name.to_string(),
        api_endpoint: url,
        data_centre: dc,
        ..Default::default()
    })?;
    federation::cluster::register(outbox, key, &Caller::platform_admin("bench"), new).await?;
    let partition = paas_proto::v1::PartitionChanged {
        partition_id: Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        cluster: name.to_string(),
        namespace: "acme-web".into(),
        ..Default::default()
    };
    sqlx::query!(
        "INSERT INTO partitions (partition_id, tenant_id, cluster, namespace, desired) VALUES ($1, $2, $3, $4, $5)",
        Uuid::parse_str(&partition.partition_id)?,
        tenant,
        name,
        "acme-web",
        prost::Message::encode_to_vec(&partition)
    )
    .execute(outbox.pool())
    .await?;
    Ok(())
}
