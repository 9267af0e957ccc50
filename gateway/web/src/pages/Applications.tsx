import { Empty, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, unwrap, type Answer } from '../api/client';
import { CursorTable } from '../components/CursorTable';
import { Health } from '../components/Health';
import { useCursorPages } from '../components/pages';
import { useSession } from '../session';

type Application = Answer<'/api/v1/tenants/{id}/applications', 'get'>['items'][number];

export default function Applications() {
  const { t } = useTranslation();
  const { tenantId, projectId } = useSession();
  const pages = useCursorPages(`${tenantId}/${projectId}`);
  const list = useQuery({
    queryKey: ['applications', tenantId, projectId, pages.cursor],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/applications', {
          params: { path: { id: tenantId! }, query: { limit: 50, cursor: pages.cursor } },
        }),
      ),
  });
  const items = list.data?.items.filter((a) => !projectId || a.project_id === projectId);
  return (
    <>
      <Typography.Title level={2}>{t('applications.title')}</Typography.Title>
      {!tenantId ? (
        <Empty description={t('dashboard.noTenant')} />
      ) : (
        <CursorTable<Application>
          rowKey="id"
          pages={pages}
          items={items}
          nextCursor={list.data?.next_cursor}
          error={list.error}
          onRetry={() => void list.refetch()}
          empty={t('applications.empty')}
          columns={[
            {
              title: t('applications.name'),
              dataIndex: 'name',
              render: (name, a) => <Link to={`/applications/${a.id}`}>{name}</Link>,
            },
            { title: t('applications.environment'), dataIndex: 'environment' },
            { title: t('applications.state'), dataIndex: 'state' },
            {
              title: t('applications.health'),
              dataIndex: 'health',
              render: (h, a) => <Health value={h} title={a.health_reason} />,
            },
            { title: t('applications.release'), dataIndex: 'current_release', render: (n) => n ?? '—' },
          ]}
        />
      )}
    </>
  );
}
