import { useState } from 'react';
import { Alert, App, Button, Card, Empty, Form, Input, Modal, Select, Space, Typography } from 'antd';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { Health } from '../../components/Health';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';
import { RUN_HEALTH } from '../images/Images';

type Pipeline = Answer<'/api/v1/pipelines', 'get'>['items'][number];
type Run = Answer<'/api/v1/runs', 'get'>['items'][number];

const STATES = ['queued', 'running', 'succeeded', 'failed'] as const;

function Runs({ tenantId, pipelines }: { tenantId: string; pipelines: Map<string, string> }) {
  const { t } = useTranslation();
  const [filter, setFilter] = useState<{ branch: string; state?: (typeof STATES)[number] }>({ branch: '' });
  const pages = useCursorPages(`${tenantId}/${filter.branch}/${filter.state}`);
  const runs = useQuery({
    queryKey: ['runs', tenantId, filter, pages.cursor],
    refetchInterval: (q) => (q.state.data?.items.some((r) => r.state === 'queued' || r.state === 'running') ? 3000 : false),
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/runs', {
          params: {
            query: {
              tenant_id: tenantId,
              branch: filter.branch || undefined,
              state: filter.state,
              limit: 50,
              cursor: pages.cursor || undefined,
            },
          },
        }),
      ),
  });
  return (
    <Card title={t('pipelines.runs')} size="small">
      <Space style={{ marginBottom: 12 }} wrap>
        <Input.Search
          aria-label={t('pipelines.branch')}
          placeholder={t('pipelines.filterBranch')}
          allowClear
          onSearch={(branch) => setFilter((f) => ({ ...f, branch: branch.trim() }))}
          style={{ width: 220 }}
        />
        <Select
          aria-label={t('pipelines.state')}
          placeholder={t('pipelines.filterState')}
          allowClear
          style={{ width: 180 }}
          value={filter.state}
          onChange={(state) => setFilter((f) => ({ ...f, state }))}
          options={STATES.map((s) => ({ value: s, label: s }))}
        />
      </Space>
      <CursorTable<Run>
        rowKey="id"
        size="small"
        pages={pages}
        items={runs.data?.items}
        nextCursor={runs.data?.next_cursor}
        error={runs.error}
        onRetry={() => void runs.refetch()}
        empty={filter.branch || filter.state ? t('pipelines.noMatchingRuns') : t('pipelines.noRuns')}
        columns={[
          {
            title: t('pipelines.run'),
            key: 'run',
            render: (_, r) => (
              <Link to={`/pipelines/runs/${r.id}`}>{`${pipelines.get(r.pipeline_id) ?? t('pipelines.pipeline')} #${r.number}`}</Link>
            ),
          },
          { title: t('pipelines.branch'), dataIndex: 'branch' },
          { title: t('pipelines.commit'), dataIndex: 'commit', render: (c: string) => <code>{c.slice(0, 10)}</code> },
          { title: t('pipelines.state'), dataIndex: 'state', render: (s: string) => <Health value={RUN_HEALTH[s] ?? s} title={s} /> },
          { title: t('pipelines.triggeredBy'), dataIndex: 'triggered_by' },
          { title: t('pipelines.startedAt'), dataIndex: 'started_at', render: formatTime },
          { title: t('pipelines.finishedAt'), dataIndex: 'finished_at', render: formatTime },
        ]}
      />
    </Card>
  );
}

/** The tenant's pipelines, starting a run, and the runs filtered by branch and state. */
export default function Pipelines() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const navigate = useNavigate();
  const { tenantId } = useSession();
  const pages = useCursorPages(tenantId);
  const [starting, setStarting] = useState<Pipeline>();
  const [failure, setFailure] = useState<string>();
  const [form] = Form.useForm<{ ref: string }>();
  const list = useQuery({
    queryKey: ['pipelines', tenantId, pages.cursor],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/pipelines', {
          params: { query: { tenant_id: tenantId!, limit: 50, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const start = useMutation({
    mutationFn: async ({ id, ref }: { id: string; ref: string }) =>
      unwrap(await api.POST('/api/v1/pipelines/{id}/runs', { params: { path: { id } }, body: { ref } })),
  });

  async function submit(v: { ref: string }) {
    if (!starting) return;
    setFailure(undefined);
    try {
      const run = await start.mutateAsync({ id: starting.id, ref: v.ref.trim() });
      void message.success(t('pipelines.started', { number: run.number }));
      setStarting(undefined);
      navigate(`/pipelines/runs/${run.id}`);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['ref']));
    }
  }

  const names = new Map((list.data?.items ?? []).map((p) => [p.id, p.name]));
  return (
    <>
      <Typography.Title level={2}>{t('pipelines.title')}</Typography.Title>
      {!tenantId ? (
        <Empty description={t('dashboard.noTenant')} />
      ) : (
        <Space direction="vertical" style={{ width: '100%' }} size="large">
          <CursorTable<Pipeline>
            rowKey="id"
            pages={pages}
            items={list.data?.items}
            nextCursor={list.data?.next_cursor}
            error={list.error}
            onRetry={() => void list.refetch()}
            empty={t('pipelines.empty')}
            columns={[
              { title: t('pipelines.name'), dataIndex: 'name' },
              { title: t('pipelines.repository'), dataIndex: 'repository' },
              { title: t('pipelines.definitionSource'), dataIndex: 'definition_source', render: (s: string) => s || '—' },
              { title: t('pipelines.builds'), dataIndex: 'builds' },
              { title: t('pipelines.createdAt'), dataIndex: 'created_at', render: formatTime },
              {
                title: '',
                key: 'actions',
                render: (_, p) => (
                  <Button size="small" type="primary" onClick={() => { setFailure(undefined); setStarting(p); }}>
                    {t('pipelines.start')}
                  </Button>
                ),
              },
            ]}
          />
          <Runs tenantId={tenantId} pipelines={names} />
        </Space>
      )}
      <Modal
        open={!!starting}
        title={t('pipelines.startTitle', { name: starting?.name ?? '' })}
        okText={t('pipelines.start')}
        okButtonProps={{ loading: start.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setStarting(undefined)}
        destroyOnHidden
      >
        {failure && <Alert type="error" showIcon message={failure} style={{ marginBottom: 12 }} />}
        <Form form={form} layout="vertical" onFinish={submit} initialValues={{ ref: 'main' }} preserve={false}>
          <Form.Item name="ref" label={t('pipelines.ref')} rules={[{ required: true, whitespace: true }]} extra={t('pipelines.refHelp')}>
            <Input autoFocus />
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
