import { Card, Empty, Select, Space, Table, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { CursorTable } from '../../components/CursorTable';
import { Health } from '../../components/Health';
import { useCursorPages } from '../../components/pages';
import { ProblemAlert } from '../../components/ProblemAlert';

type Cluster = Answer<'/api/v1/clusters', 'get'>['items'][number];
type DataCentre = Answer<'/api/v1/datacenters', 'get'>['items'][number];

function DataCentres({ onPick }: { onPick: (name: string) => void }) {
  const { t } = useTranslation();
  const list = useQuery({
    queryKey: ['datacenters'],
    queryFn: async () => unwrap(await api.GET('/api/v1/datacenters')).items,
    refetchInterval: 5000,
  });
  if (list.error) return <ProblemAlert error={list.error} onRetry={() => void list.refetch()} />;
  return (
    <Table<DataCentre>
      size="small"
      rowKey="name"
      loading={list.isPending}
      dataSource={list.data}
      pagination={false}
      locale={{ emptyText: <Empty description={t('clusters.emptyDataCentres')} /> }}
      columns={[
        {
          title: t('clusters.name'),
          dataIndex: 'name',
          render: (name) => <Typography.Link onClick={() => onPick(name)}>{name}</Typography.Link>,
        },
        { title: t('clusters.state'), dataIndex: 'state', render: (s) => <Health value={s} /> },
        {
          title: t('clusters.clusters'),
          key: 'clusters',
          render: (_, dc) => (
            <Space wrap>
              {dc.clusters.map((c) => (
                <span key={c.id}>
                  {c.name} <Health value={c.condition.status} title={c.condition.message || c.condition.reason} />
                </span>
              ))}
            </Space>
          ),
        },
      ]}
    />
  );
}

export default function Clusters() {
  const { t } = useTranslation();
  const [dataCentre, setDataCentre] = useState('');
  const pages = useCursorPages(dataCentre);
  const list = useQuery({
    queryKey: ['clusters', dataCentre, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/clusters', {
          params: { query: { limit: 50, cursor: pages.cursor, data_centre: dataCentre } },
        }),
      ),
    refetchInterval: 5000,
  });
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Typography.Title level={2}>{t('nav.clusters')}</Typography.Title>
      <Card title={t('clusters.dataCentres')}>
        <DataCentres onPick={setDataCentre} />
      </Card>
      <Card
        title={t('clusters.title')}
        extra={
          <Select
            aria-label={t('clusters.filter')}
            allowClear
            placeholder={t('clusters.filter')}
            style={{ width: 200 }}
            value={dataCentre || undefined}
            onChange={(v) => setDataCentre(v ?? '')}
            options={[...new Set(list.data?.items.map((c) => c.data_centre) ?? [])]
              .concat(dataCentre ? [dataCentre] : [])
              .filter((v, i, all) => all.indexOf(v) === i)
              .map((v) => ({ value: v, label: v }))}
          />
        }
      >
        <CursorTable<Cluster>
          rowKey="id"
          size="small"
          pages={pages}
          items={list.data?.items}
          nextCursor={list.data?.next_cursor}
          error={list.error}
          onRetry={() => void list.refetch()}
          empty={t('clusters.empty')}
          columns={[
            { title: t('clusters.name'), dataIndex: 'name' },
            { title: t('clusters.dataCentre'), dataIndex: 'data_centre' },
            { title: t('clusters.environment'), dataIndex: 'environment' },
            {
              title: t('clusters.condition'),
              key: 'condition',
              render: (_, c) => <Health value={c.condition.status} title={c.condition.message || c.condition.reason} />,
            },
            { title: t('clusters.version'), key: 'version', render: (_, c) => c.discovery.kubernetes_version || '—' },
            { title: t('clusters.nodes'), key: 'nodes', render: (_, c) => c.discovery.nodes },
            {
              title: t('clusters.capacity'),
              key: 'capacity',
              render: (_, c) =>
                Object.entries(c.discovery.allocatable)
                  .filter(([k]) => k === 'cpu' || k === 'memory' || k === 'pods')
                  .map(([k, v]) => `${k} ${v}`)
                  .join(' · ') || '—',
            },
          ]}
        />
      </Card>
    </Space>
  );
}
