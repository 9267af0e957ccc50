import { useState } from 'react';
import { App, Button, Popconfirm, Select, Space, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { Health } from '../../components/Health';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';
import { useTenants } from '../../Shell';
import { ToneTag } from '../../components/ToneTag';

type Runner = Answer<'/api/v1/runners', 'get'>['items'][number];

/** Pipeline runners of every tenant: online, draining, their load; drain one. */
export default function Runners() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { whoami } = useSession();
  const tenants = useTenants(!!whoami);
  const [tenantId, setTenantId] = useState<string>();
  const pages = useCursorPages(tenantId);
  const names = new Map((tenants.data ?? []).map((x) => [x.id, x.name]));
  const list = useQuery({
    queryKey: ['runners', tenantId, pages.cursor],
    refetchInterval: 15_000,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/runners', {
          params: { query: { tenant_id: tenantId, limit: 50, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const drain = useMutation({
    mutationFn: async (id: string) => unwrap(await api.POST('/api/v1/runners/{id}/drain', { params: { path: { id } } })),
    onSuccess: (r) => {
      void message.success(t('runners.drained', { name: r.name }));
      void client.invalidateQueries({ queryKey: ['runners'] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <>
      <Typography.Title level={2}>{t('runners.title')}</Typography.Title>
      <Select
        aria-label={t('runners.tenant')}
        placeholder={t('runners.allTenants')}
        allowClear
        showSearch
        optionFilterProp="label"
        style={{ width: 240, marginBottom: 16 }}
        value={tenantId}
        onChange={setTenantId}
        options={tenants.data?.map((x) => ({ value: x.id, label: x.name }))}
      />
      <CursorTable<Runner>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('runners.empty')}
        columns={[
          { title: t('runners.name'), dataIndex: 'name' },
          { title: t('runners.tenant'), dataIndex: 'tenant_id', render: (id: string) => names.get(id) ?? id },
          {
            title: t('runners.online'),
            dataIndex: 'online',
            render: (online: boolean) => <Health value={online ? 'Ready' : 'Lost'} title={online ? 'online' : 'offline'} />,
          },
          { title: t('runners.state'), dataIndex: 'state', render: (s: string) => <ToneTag tone={s === 'active' ? 'good' : 'warning'}>{s}</ToneTag> },
          { title: t('runners.concurrency'), dataIndex: 'concurrency' },
          { title: t('runners.sandbox'), dataIndex: 'sandbox', render: (s: string) => s || '—' },
          { title: t('runners.lastSeen'), dataIndex: 'last_seen_at', render: formatTime },
          {
            title: '',
            key: 'actions',
            render: (_, r) =>
              r.state === 'active' && (
                <Space>
                  <Popconfirm title={t('runners.drainHelp')} onConfirm={() => drain.mutate(r.id)}>
                    <Button size="small">{t('runners.drain')}</Button>
                  </Popconfirm>
                </Space>
              ),
          },
        ]}
      />
    </>
  );
}
