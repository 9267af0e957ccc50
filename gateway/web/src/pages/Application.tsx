import { Card, Descriptions, Empty, Skeleton, Space, Table, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { useParams } from 'react-router-dom';
import { api, unwrap, type Answer } from '../api/client';
import { CursorTable } from '../components/CursorTable';
import { Health } from '../components/Health';
import { useCursorPages } from '../components/pages';
import { ProblemAlert } from '../components/ProblemAlert';

type Application = Answer<'/api/v1/applications/{id}', 'get'>;
type Release = Answer<'/api/v1/applications/{id}/releases', 'get'>['items'][number];

/** What a service's binding reports for one cluster (apps' `clusters` objects). */
export interface Placement {
  cluster: string;
  health?: string;
  health_reason?: string;
  replicas?: number;
  ready?: number | null;
  available?: number | null;
  last_error?: string;
}

/** Services by clusters: one row per service, one column per cluster any service is on. */
export function serviceGrid(app: Pick<Application, 'services'>) {
  const placements = app.services.map((s) => ({
    service: s,
    byCluster: new Map(
      (Array.isArray(s.clusters) ? (s.clusters as unknown as Placement[]) : []).map((p) => [p.cluster, p] as const),
    ),
  }));
  const clusters = [...new Set(placements.flatMap((p) => [...p.byCluster.keys()]))].sort();
  return { clusters, rows: placements };
}

/** How often the application is read again: faster while it is not settled. */
export function refreshEvery(app: Pick<Application, 'health' | 'services'> | undefined): number {
  const settled = app?.health === 'Healthy' && app.services.every((s) => s.health === 'Healthy');
  return settled ? 5000 : 2000;
}

function ServicesByCluster({ app }: { app: Application }) {
  const { t } = useTranslation();
  const { clusters, rows } = serviceGrid(app);
  if (rows.length === 0 || clusters.length === 0) return <Empty description={t('applications.noServices')} />;
  return (
    <Table
      size="small"
      pagination={false}
      rowKey={(r) => r.service.name}
      dataSource={rows}
      scroll={{ x: 'max-content' }}
      columns={[
        {
          title: t('applications.service'),
          key: 'service',
          fixed: 'left',
          render: (_, r) => (
            <Space>
              {r.service.name}
              <Health value={r.service.health} title={r.service.health_reason} />
            </Space>
          ),
        },
        ...clusters.map((c) => ({
          title: c,
          key: c,
          render: (_: unknown, r: (typeof rows)[number]) => {
            const p = r.byCluster.get(c);
            if (!p) return '—';
            return (
              <Space direction="vertical" size={0}>
                <Health value={p.health} title={p.health_reason || p.last_error} />
                <Typography.Text type="secondary">
                  {t('applications.replicas', { ready: p.ready ?? '?', replicas: p.replicas ?? '?' })}
                </Typography.Text>
              </Space>
            );
          },
        })),
      ]}
    />
  );
}

function Releases({ id }: { id: string }) {
  const { t } = useTranslation();
  const pages = useCursorPages(id);
  const list = useQuery({
    queryKey: ['releases', id, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/applications/{id}/releases', {
          params: { path: { id }, query: { limit: 20, cursor: pages.cursor } },
        }),
      ),
  });
  return (
    <CursorTable<Release>
      rowKey="id"
      size="small"
      pages={pages}
      items={list.data?.items}
      nextCursor={list.data?.next_cursor}
      error={list.error}
      onRetry={() => void list.refetch()}
      empty={t('applications.noReleases')}
      columns={[
        { title: t('applications.number'), dataIndex: 'number', width: 60 },
        { title: t('applications.state'), dataIndex: 'state' },
        { title: t('applications.phase'), dataIndex: 'phase' },
        { title: t('applications.traffic'), dataIndex: 'traffic', render: (v) => `${v}%` },
        { title: t('applications.createdBy'), dataIndex: 'created_by' },
        {
          title: t('applications.createdAt'),
          dataIndex: 'created_at',
          render: (at) => (at ? new Date(at).toLocaleString() : '—'),
        },
      ]}
    />
  );
}

export default function ApplicationPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const app = useQuery({
    queryKey: ['application', id],
    queryFn: async () => unwrap(await api.GET('/api/v1/applications/{id}', { params: { path: { id } } })),
    // Live until the gateway's event stream for applications lands: every
    // 2 s while a rollout or a failover moves replicas, every 5 s once settled.
    refetchInterval: (q) => refreshEvery(q.state.data),
  });
  if (app.error) return <ProblemAlert error={app.error} onRetry={() => void app.refetch()} />;
  if (!app.data) return <Skeleton active />;
  const a = app.data;
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Typography.Title level={2}>{a.name}</Typography.Title>
      <Descriptions size="small" column={{ xs: 1, md: 3 }}>
        <Descriptions.Item label={t('applications.environment')}>{a.environment}</Descriptions.Item>
        <Descriptions.Item label={t('applications.state')}>{a.state}</Descriptions.Item>
        <Descriptions.Item label={t('applications.health')}>
          <Health value={a.health} title={a.health_reason} />
        </Descriptions.Item>
      </Descriptions>
      <Card title={t('applications.services')}>
        <ServicesByCluster app={a} />
      </Card>
      <Card title={t('applications.releases')}>
        <Releases id={id} />
      </Card>
    </Space>
  );
}
