import { useState } from 'react';
import { App, Button, Empty, Input, Popconfirm, Select, Space, Table, Tabs, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { Health } from '../../components/Health';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';

type Repository = Answer<'/api/v1/repositories', 'get'>['items'][number];
type Rule = Answer<'/api/v1/tenants/{id}/replication-rules', 'get'>['items'][number];
type ReplicationRun = Answer<'/api/v1/replication-rules/{id}/runs', 'get'>['items'][number];
type Trigger = Answer<'/api/v1/applications/{id}/image-triggers', 'get'>['items'][number];

/** Run states as the Health badge colours them. */
export const RUN_HEALTH: Record<string, string> = {
  queued: 'Unknown',
  running: 'Progressing',
  succeeded: 'Healthy',
  failed: 'Failed',
};

function Repositories({ tenantId }: { tenantId: string }) {
  const { t } = useTranslation();
  const [filter, setFilter] = useState<{ q: string; label: string }>({ q: '', label: '' });
  const pages = useCursorPages(`${tenantId}/${filter.q}/${filter.label}`);
  const list = useQuery({
    queryKey: ['repositories', tenantId, filter, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/repositories', {
          params: {
            query: {
              tenant_id: tenantId,
              q: filter.q || undefined,
              label: filter.label || undefined,
              limit: 50,
              cursor: pages.cursor || undefined,
            },
          },
        }),
      ),
  });
  return (
    <>
      <Space style={{ marginBottom: 16 }} wrap>
        <Input.Search
          aria-label={t('images.searchName')}
          placeholder={t('images.searchName')}
          allowClear
          onSearch={(q) => setFilter((f) => ({ ...f, q: q.trim() }))}
          style={{ width: 240 }}
        />
        <Input.Search
          aria-label={t('images.searchLabel')}
          placeholder={t('images.searchLabel')}
          allowClear
          onSearch={(label) => setFilter((f) => ({ ...f, label: label.trim() }))}
          style={{ width: 240 }}
        />
      </Space>
      <CursorTable<Repository>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={filter.q || filter.label ? t('images.noMatch') : t('images.empty')}
        columns={[
          {
            title: t('images.repository'),
            dataIndex: 'name',
            render: (name: string, r) => (
              <Link to={`/images/${r.id}`} state={{ name }}>
                {name}
              </Link>
            ),
          },
          { title: t('images.tags'), dataIndex: 'tag_count' },
          { title: t('images.updatedAt'), dataIndex: 'updated_at', render: formatTime },
        ]}
      />
    </>
  );
}

function RuleRuns({ rule }: { rule: Rule }) {
  const { t } = useTranslation();
  const runs = useQuery({
    queryKey: ['replication-runs', rule.id],
    refetchInterval: (q) => (q.state.data?.items.some((r) => r.state === 'running' || r.state === 'queued') ? 3000 : false),
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/replication-rules/{id}/runs', { params: { path: { id: rule.id }, query: { limit: 10 } } })),
  });
  return (
    <Table<ReplicationRun>
      rowKey="id"
      size="small"
      pagination={false}
      loading={runs.isPending}
      dataSource={runs.data?.items}
      locale={{ emptyText: <Empty description={t('images.noRuns')} /> }}
      columns={[
        { title: t('images.trigger'), dataIndex: 'trigger' },
        { title: t('images.state'), dataIndex: 'state', render: (s: string) => <Health value={RUN_HEALTH[s] ?? s} title={s} /> },
        {
          title: t('images.items'),
          key: 'items',
          render: (_, r) => t('images.itemsCopied', { copied: r.items_copied, failed: r.items_failed, total: r.items_total }),
        },
        { title: t('images.message'), dataIndex: 'message', render: (m: string) => m || '—' },
        { title: t('images.startedAt'), dataIndex: 'started_at', render: formatTime },
        { title: t('images.finishedAt'), dataIndex: 'finished_at', render: formatTime },
      ]}
    />
  );
}

/** A tenant's replication rules to data-centre registries, their status and runs. */
export function ReplicationRules({ tenantId }: { tenantId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const pages = useCursorPages(tenantId);
  const list = useQuery({
    queryKey: ['replication-rules', tenantId, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/replication-rules', {
          params: { path: { id: tenantId }, query: { limit: 50, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const run = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.POST('/api/v1/replication-rules/{id}/runs', { params: { path: { id } } })),
    onSuccess: (_, id) => {
      void message.success(t('images.runStarted'));
      void client.invalidateQueries({ queryKey: ['replication-runs', id] });
      void client.invalidateQueries({ queryKey: ['replication-rules'] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <CursorTable<Rule>
      rowKey="id"
      pages={pages}
      items={list.data?.items}
      nextCursor={list.data?.next_cursor}
      error={list.error}
      onRetry={() => void list.refetch()}
      empty={t('images.noRules')}
      expandable={{ expandedRowRender: (r) => <RuleRuns rule={r} /> }}
      columns={[
        { title: t('images.rule'), dataIndex: 'name' },
        { title: t('images.repositories'), dataIndex: 'repositories', render: (s: string) => <code>{s}</code> },
        { title: t('images.targets'), dataIndex: 'registry_ids', render: (ids: string[]) => ids.length },
        {
          title: t('images.when'),
          key: 'when',
          render: (_, r) =>
            [r.on_push ? t('images.onPush') : '', r.schedule ? `cron ${r.schedule}` : ''].filter(Boolean).join(' · ') || '—',
        },
        { title: t('images.enabled'), dataIndex: 'enabled', render: (e: boolean) => (e ? t('requests.yes') : t('requests.no')) },
        {
          title: t('images.lastRun'),
          key: 'last',
          render: (_, r) =>
            r.status.last_run_state ? <Health value={RUN_HEALTH[r.status.last_run_state]} title={r.status.last_run_state} /> : '—',
        },
        {
          title: t('images.lag'),
          key: 'lag',
          render: (_, r) => t('images.lagValue', { seconds: r.status.lag_seconds, pending: r.status.pending_items }),
        },
        {
          title: '',
          key: 'actions',
          render: (_, r) => (
            <Button size="small" loading={run.isPending && run.variables === r.id} onClick={() => run.mutate(r.id)}>
              {t('images.runNow')}
            </Button>
          ),
        },
      ]}
    />
  );
}

function Triggers({ tenantId }: { tenantId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const [applicationId, setApplicationId] = useState<string>();
  const pages = useCursorPages(applicationId);
  const applications = useQuery({
    queryKey: ['applications', tenantId, 'all'],
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/tenants/{id}/applications', { params: { path: { id: tenantId }, query: { limit: 500 } } }))
        .items,
  });
  const list = useQuery({
    queryKey: ['image-triggers', applicationId, pages.cursor],
    enabled: !!applicationId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/applications/{id}/image-triggers', {
          params: { path: { id: applicationId! }, query: { limit: 50, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const remove = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE('/api/v1/image-triggers/{id}', { params: { path: { id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ['image-triggers'] }),
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <>
      <Select
        aria-label={t('images.application')}
        placeholder={t('images.pickApplication')}
        style={{ width: 280, marginBottom: 16 }}
        loading={applications.isPending}
        value={applicationId}
        onChange={setApplicationId}
        showSearch
        optionFilterProp="label"
        options={applications.data?.map((a) => ({ value: a.id, label: a.name }))}
      />
      {!applicationId ? (
        <Empty description={t('images.pickApplicationHelp')} />
      ) : (
        <CursorTable<Trigger>
          rowKey="id"
          pages={pages}
          items={list.data?.items}
          nextCursor={list.data?.next_cursor}
          error={list.error}
          onRetry={() => void list.refetch()}
          empty={t('images.noTriggers')}
          columns={[
            { title: t('images.repository'), dataIndex: 'repository' },
            { title: t('images.tagPattern'), dataIndex: 'tags', render: (s: string) => <code>{s}</code> },
            { title: t('images.parameter'), dataIndex: 'parameter' },
            {
              title: t('images.firings'),
              key: 'firings',
              render: (_, tr) => {
                const lastFiring = tr.firings[tr.firings.length - 1];
                return lastFiring ? (
                  <Space>
                    {tr.firings.length}
                    <Tag>{`${lastFiring.tag}: ${lastFiring.state}`}</Tag>
                  </Space>
                ) : (
                  '0'
                );
              },
            },
            { title: t('images.createdBy'), dataIndex: 'created_by' },
            {
              title: '',
              key: 'actions',
              render: (_, tr) => (
                <Popconfirm title={t('images.deleteTrigger')} onConfirm={() => remove.mutate(tr.id)}>
                  <Button size="small" danger>
                    {t('configs.delete')}
                  </Button>
                </Popconfirm>
              ),
            },
          ]}
        />
      )}
    </>
  );
}

/** The tenant's images: repositories, replication and image triggers. */
export default function Images() {
  const { t } = useTranslation();
  const { tenantId } = useSession();
  return (
    <>
      <Typography.Title level={2}>{t('images.title')}</Typography.Title>
      {!tenantId ? (
        <Empty description={t('dashboard.noTenant')} />
      ) : (
        <Tabs
          items={[
            { key: 'repositories', label: t('images.repositories'), children: <Repositories tenantId={tenantId} /> },
            { key: 'replication', label: t('images.replication'), children: <ReplicationRules tenantId={tenantId} /> },
            { key: 'triggers', label: t('images.triggers'), children: <Triggers tenantId={tenantId} /> },
          ]}
        />
      )}
    </>
  );
}
