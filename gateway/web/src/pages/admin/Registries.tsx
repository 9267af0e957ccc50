import { App, Button, Card, Empty, Space, Table, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';
import { useTenants } from '../../Shell';
import { ReplicationRules } from '../images/Images';
import { ToneTag } from '../../components/ToneTag';

type Registry = Answer<'/api/v1/registries', 'get'>['items'][number];
type GcRun = Answer<'/api/v1/registries/{id}/garbage-collections', 'get'>['items'][number];

function GarbageCollections({ registry }: { registry: Registry }) {
  const { t } = useTranslation();
  const runs = useQuery({
    queryKey: ['gc', registry.id],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/registries/{id}/garbage-collections', { params: { path: { id: registry.id }, query: { limit: 10 } } }),
      ),
  });
  return (
    <Table<GcRun>
      rowKey="id"
      size="small"
      pagination={false}
      loading={runs.isPending}
      dataSource={runs.data?.items}
      locale={{ emptyText: <Empty description={t('registries.noGc')} /> }}
      columns={[
        { title: t('registries.cause'), dataIndex: 'cause' },
        { title: t('registries.state'), dataIndex: 'state' },
        { title: t('registries.blobsDeleted'), dataIndex: 'blobs_deleted' },
        { title: t('registries.freed'), dataIndex: 'freed_bytes' },
        { title: t('registries.error'), dataIndex: 'error', render: (e: string | null) => e || '—' },
        { title: t('registries.finishedAt'), dataIndex: 'finished_at', render: formatTime },
      ]}
    />
  );
}

/** The image registries (master and per data centre), their garbage collection, and a tenant's replication to them. */
export default function Registries() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { whoami, tenantId } = useSession();
  const tenants = useTenants(!!whoami);
  const tenant = tenants.data?.find((x) => x.id === tenantId);
  const pages = useCursorPages();
  const list = useQuery({
    queryKey: ['registries', pages.cursor],
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/registries', { params: { query: { limit: 50, cursor: pages.cursor || undefined } } })),
  });
  const collect = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.POST('/api/v1/registries/{id}/garbage-collections', { params: { path: { id } } })),
    onSuccess: (_, id) => {
      void message.success(t('registries.gcQueued'));
      void client.invalidateQueries({ queryKey: ['gc', id] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <>
      <Typography.Title level={2}>{t('registries.title')}</Typography.Title>
      <Space direction="vertical" style={{ width: '100%' }} size="large">
        <CursorTable<Registry>
          rowKey="id"
          pages={pages}
          items={list.data?.items}
          nextCursor={list.data?.next_cursor}
          error={list.error}
          onRetry={() => void list.refetch()}
          empty={t('registries.empty')}
          expandable={{ expandedRowRender: (r) => <GarbageCollections registry={r} /> }}
          columns={[
            {
              title: t('registries.name'),
              key: 'name',
              render: (_, r) => (
                <Space>
                  {r.name}
                  {r.master && <ToneTag tone="info">{t('registries.master')}</ToneTag>}
                </Space>
              ),
            },
            { title: 'URL', dataIndex: 'url' },
            { title: t('registries.dataCentre'), dataIndex: 'data_centre', render: (d: string) => d || '—' },
            { title: t('registries.cluster'), dataIndex: 'cluster', render: (c: string) => c || '—' },
            { title: t('registries.username'), dataIndex: 'username', render: (u: string) => u || '—' },
            {
              title: '',
              key: 'actions',
              render: (_, r) => (
                <Button size="small" loading={collect.isPending && collect.variables === r.id} onClick={() => collect.mutate(r.id)}>
                  {t('registries.collect')}
                </Button>
              ),
            },
          ]}
        />
        <Card size="small" title={t('registries.replicationOf', { tenant: tenant?.display_name || tenant?.name || '—' })}>
          {tenantId ? <ReplicationRules tenantId={tenantId} /> : <Empty description={t('registries.pickTenant')} />}
        </Card>
      </Space>
    </>
  );
}
