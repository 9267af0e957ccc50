import { lazy, Suspense, useMemo } from 'react';
import { Card, Col, Empty, Progress, Row, Skeleton, Table, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { percentUsed } from '../components/quantity';
import { useSession } from '../session';

const UsageChart = lazy(() => import('../components/UsageChart'));

type ScopeUsage = Answer<'/api/v1/tenants/{id}/usage', 'get'>['scopes'][number];

interface Row {
  key: string;
  level: string;
  name: string;
  resource: string;
  hard?: string | null;
  used: string;
}

function rows(scopes: ScopeUsage[]): Row[] {
  return scopes.flatMap((s) =>
    s.lines.map((l) => ({
      key: `${s.level}/${s.owner_id}/${l.resource}`,
      level: s.level,
      name: s.key || s.owner_id,
      resource: l.resource,
      hard: l.hard,
      used: l.used,
    })),
  );
}

export default function Dashboard() {
  const { t } = useTranslation();
  const { tenantId, whoami } = useSession();
  const usage = useQuery({
    queryKey: ['usage', tenantId],
    enabled: !!tenantId,
    queryFn: async () => unwrap(await api.GET('/api/v1/tenants/{id}/usage', { params: { path: { id: tenantId! } } })),
  });
  const table = useMemo(() => rows(usage.data?.scopes ?? []), [usage.data]);
  const tenantScope = usage.data?.scopes.find((s) => s.level === 'tenant');

  let body;
  if (!tenantId) {
    body = <Empty description={whoami ? t('dashboard.noTenant') : ''} />;
  } else if (usage.error) {
    body = <ProblemAlert error={usage.error} onRetry={() => void usage.refetch()} />;
  } else if (usage.isPending) {
    body = <Skeleton active />;
  } else if (table.length === 0) {
    body = <Empty description={t('dashboard.noQuota')} />;
  } else {
    body = (
      <Row gutter={[16, 16]}>
        {tenantScope && tenantScope.lines.length > 0 && (
          <Col xs={24} xl={10}>
            <Card title={t('dashboard.chart', { scope: tenantScope.key || tenantScope.level })}>
              <Suspense fallback={<Skeleton active />}>
                <UsageChart
                  bars={tenantScope.lines}
                  usedLabel={t('dashboard.used')}
                  title={t('dashboard.chart', { scope: tenantScope.key || tenantScope.level })}
                />
              </Suspense>
            </Card>
          </Col>
        )}
        <Col xs={24} xl={tenantScope ? 14 : 24}>
          <Card title={t('dashboard.quota')}>
            <Table<Row>
              size="small"
              dataSource={table}
              pagination={false}
              columns={[
                { title: t('dashboard.level'), dataIndex: 'level' },
                { title: t('dashboard.key'), dataIndex: 'name' },
                { title: t('dashboard.resource'), dataIndex: 'resource' },
                { title: t('dashboard.used'), dataIndex: 'used' },
                { title: t('dashboard.hard'), dataIndex: 'hard', render: (h) => h ?? t('common.unlimited') },
                {
                  title: '%',
                  key: 'percent',
                  width: 140,
                  render: (_, r) => {
                    const p = percentUsed(r.used, r.hard);
                    return p === undefined ? '—' : (
                      <Progress
                        aria-label={`${r.name} ${r.resource}: ${p}%`}
                        percent={Math.min(p, 100)}
                        size="small"
                        status={p >= 100 ? 'exception' : 'normal'}
                        format={() => `${p}%`}
                      />
                    );
                  },
                },
              ]}
            />
          </Card>
        </Col>
        {Object.keys(usage.data?.observed_by_data_centre ?? {}).length > 0 && (
          <Col span={24}>
            <Card title={t('dashboard.observed')}>
              <Table
                size="small"
                pagination={false}
                rowKey="dc"
                dataSource={Object.entries(usage.data!.observed_by_data_centre).map(([dc, amounts]) => ({
                  dc,
                  amounts: Object.entries(amounts)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(', '),
                }))}
                columns={[
                  { title: t('dashboard.dataCentre'), dataIndex: 'dc' },
                  { title: t('dashboard.used'), dataIndex: 'amounts' },
                ]}
              />
            </Card>
          </Col>
        )}
      </Row>
    );
  }
  return (
    <>
      <Typography.Title level={2}>{t('dashboard.title')}</Typography.Title>
      {body}
    </>
  );
}
