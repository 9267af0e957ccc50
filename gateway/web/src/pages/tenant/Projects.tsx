// The tenant's projects and their partitions (a project's namespace on one
// cluster), each with its quota: hard limit against what is used.
import { useState } from 'react';
import { Alert, App, Button, Empty, Form, Input, Modal, Select, Space, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { CursorTable } from '../../components/CursorTable';
import { picked, showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type Project = Answer<'/api/v1/tenants/{id}/projects', 'get'>['items'][number];
type Partition = Answer<'/api/v1/projects/{id}/partitions', 'get'>['items'][number];
type ScopeUsage = Answer<'/api/v1/tenants/{id}/usage', 'get'>['scopes'][number];
type Line = ScopeUsage['lines'][number];

/** The usage lines of one project or partition, from the tenant's usage. */
function useQuotaLines(tenantId: string) {
  const usage = useQuery({
    queryKey: ['usage', tenantId],
    queryFn: async () => unwrap(await api.GET('/api/v1/tenants/{id}/usage', { params: { path: { id: tenantId } } })),
  });
  return (level: 'project' | 'partition', ownerId: string): Line[] =>
    usage.data?.scopes.find((s) => s.level === level && s.owner_id === ownerId)?.lines ?? [];
}

function Quota({ lines }: { lines: Line[] }) {
  const { t } = useTranslation();
  if (lines.length === 0) return <Typography.Text type="secondary">{t('portal.projects.noQuota')}</Typography.Text>;
  return (
    <Space direction="vertical" size={0}>
      {lines.map((l) => (
        <Typography.Text key={l.resource}>
          {l.resource}: {l.hard ?? t('common.unlimited')} / {l.used}
        </Typography.Text>
      ))}
    </Space>
  );
}

interface QuotaTarget {
  kind: 'project' | 'partition';
  id: string;
  name: string;
  lines: Line[];
}

/** Sets a project's or partition's hard limits, one resource a row. */
function QuotaDialog({ target, onClose }: { target: QuotaTarget | undefined; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const [form] = Form.useForm<{ lines: { resource: string; hard: string }[] }>();
  const [failure, setFailure] = useState<string>();
  const save = useMutation({
    mutationFn: async (hard: Record<string, string>) => {
      if (!target) return;
      if (target.kind === 'project') {
        unwrap(await api.PUT('/api/v1/projects/{id}/quota', { params: { path: { id: target.id } }, body: { hard } }));
      } else {
        unwrap(await api.PUT('/api/v1/partitions/{id}/quota', { params: { path: { id: target.id } }, body: { hard } }));
      }
    },
  });
  async function finish(values: { lines?: { resource: string; hard: string }[] }) {
    setFailure(undefined);
    const hard = Object.fromEntries((values.lines ?? []).map((l) => [l.resource.trim(), l.hard.trim()]));
    try {
      await save.mutateAsync(hard);
      void message.success(t('portal.projects.quotaSaved', { name: target?.name }));
      void client.invalidateQueries({ queryKey: ['usage'] });
      onClose();
    } catch (e) {
      setFailure(showProblemOnForm(form, e, []));
    }
  }
  return (
    <Modal
      open={!!target}
      title={t('portal.projects.quotaTitle', { name: target?.name ?? '' })}
      okText={t('portal.common.save')}
      okButtonProps={{ loading: save.isPending }}
      onOk={() => form.submit()}
      onCancel={onClose}
      destroyOnHidden
    >
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
      <Form
        form={form}
        layout="vertical"
        onFinish={finish}
        initialValues={{
          lines: (target?.lines ?? []).filter((l) => l.hard).map((l) => ({ resource: l.resource, hard: l.hard ?? '' })),
        }}
      >
        <Form.List name="lines">
          {(fields, { add, remove }) => (
            <>
              {fields.map((f) => (
                <Space key={f.key} align="baseline">
                  <Form.Item name={[f.name, 'resource']} rules={[{ required: true }]}>
                    <Input aria-label={t('portal.projects.resource')} placeholder="requests.cpu" />
                  </Form.Item>
                  <Form.Item name={[f.name, 'hard']} rules={[{ required: true }]}>
                    <Input aria-label={t('portal.projects.hard')} placeholder="4" />
                  </Form.Item>
                  <Button onClick={() => remove(f.name)}>{t('portal.common.remove')}</Button>
                </Space>
              ))}
              <Button type="dashed" onClick={() => add({ resource: '', hard: '' })}>
                {t('portal.projects.addResource')}
              </Button>
            </>
          )}
        </Form.List>
      </Form>
    </Modal>
  );
}

function Partitions({
  project,
  quota,
  onQuota,
}: {
  project: Project;
  quota: (level: 'partition', id: string) => Line[];
  onQuota: (t: QuotaTarget) => void;
}) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const pages = useCursorPages(project.id);
  const [adding, setAdding] = useState(false);
  const [form] = Form.useForm<{ cluster: string; namespace?: string }>();
  const [failure, setFailure] = useState<string>();
  const list = useQuery({
    queryKey: ['partitions', project.id, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/projects/{id}/partitions', {
          params: { path: { id: project.id }, query: { limit: 50, cursor: pages.cursor } },
        }),
      ),
  });
  const clusters = useQuery({
    queryKey: ['clusters', 'all'],
    enabled: adding,
    queryFn: async () => unwrap(await api.GET('/api/v1/clusters', { params: { query: { limit: 500 } } })).items,
  });
  const create = useMutation({
    mutationFn: async (v: { cluster: string; namespace?: string }) => {
      const cluster = clusters.data?.find((c) => c.name === v.cluster);
      return unwrap(
        await api.POST('/api/v1/projects/{id}/partitions', {
          params: { path: { id: project.id } },
          body: { cluster: v.cluster, data_centre: cluster?.data_centre ?? '', namespace: v.namespace || undefined },
        }),
      );
    },
  });
  async function finish(v: { cluster: string; namespace?: string }) {
    setFailure(undefined);
    try {
      const p = await create.mutateAsync(v);
      void message.success(t('portal.common.created', { name: p.namespace }));
      void client.invalidateQueries({ queryKey: ['partitions', project.id] });
      setAdding(false);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['cluster', 'namespace', 'data_centre']));
    }
  }
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Space>
        <Typography.Text strong>{t('portal.projects.partitions')}</Typography.Text>
        <Button size="small" onClick={() => setAdding(true)}>
          {t('portal.projects.addPartition')}
        </Button>
      </Space>
      <CursorTable<Partition>
        rowKey="id"
        size="small"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.projects.noPartitions')}
        columns={[
          { title: t('portal.projects.namespace'), dataIndex: 'namespace' },
          { title: t('portal.projects.cluster'), dataIndex: 'cluster' },
          { title: t('portal.projects.dataCentre'), dataIndex: 'data_centre' },
          { title: t('portal.projects.quota'), key: 'quota', render: (_, p) => <Quota lines={quota('partition', p.id)} /> },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, p) => (
              <Button
                size="small"
                onClick={() => onQuota({ kind: 'partition', id: p.id, name: p.namespace, lines: quota('partition', p.id) })}
              >
                {t('portal.projects.editQuota')}
              </Button>
            ),
          },
        ]}
      />
      <Modal
        open={adding}
        title={t('portal.projects.addPartitionTitle', { project: project.name })}
        okText={t('portal.common.create')}
        okButtonProps={{ loading: create.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setAdding(false)}
        destroyOnHidden
      >
        {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
        <Form form={form} layout="vertical" onFinish={finish}>
          <Form.Item name="cluster" label={t('portal.projects.cluster')} rules={[picked(t('portal.common.required', { what: t('portal.projects.cluster') }))]}>
            <Select
              showSearch
              loading={clusters.isPending}
              options={clusters.data?.map((c) => ({ value: c.name, label: `${c.name} (${c.data_centre}, ${c.network_domain})` }))}
            />
          </Form.Item>
          <Form.Item name="namespace" label={t('portal.projects.namespace')} extra={t('portal.projects.namespaceHelp')}>
            <Input />
          </Form.Item>
        </Form>
      </Modal>
    </Space>
  );
}

export default function Projects() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { tenantId } = useSession();
  const pages = useCursorPages(tenantId);
  const [creating, setCreating] = useState(false);
  const [quotaTarget, setQuotaTarget] = useState<QuotaTarget>();
  const [form] = Form.useForm<{ name: string; display_name?: string }>();
  const [failure, setFailure] = useState<string>();
  const quota = useQuotaLines(tenantId ?? '');
  const list = useQuery({
    queryKey: ['projects', tenantId, 'page', pages.cursor],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/projects', {
          params: { path: { id: tenantId! }, query: { limit: 50, cursor: pages.cursor } },
        }),
      ),
  });
  const create = useMutation({
    mutationFn: async (body: { name: string; display_name?: string }) =>
      unwrap(await api.POST('/api/v1/tenants/{id}/projects', { params: { path: { id: tenantId! } }, body })),
  });
  async function finish(v: { name: string; display_name?: string }) {
    setFailure(undefined);
    try {
      const p = await create.mutateAsync(v);
      void message.success(t('portal.common.created', { name: p.name }));
      void client.invalidateQueries({ queryKey: ['projects', tenantId] });
      setCreating(false);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['name', 'display_name']));
    }
  }
  if (!tenantId) {
    return (
      <>
        <Typography.Title level={2}>{t('portal.projects.title')}</Typography.Title>
        <Empty description={t('portal.common.noTenant')} />
      </>
    );
  }
  return (
    <>
      <Space style={{ width: '100%', justifyContent: 'space-between' }}>
        <Typography.Title level={2}>{t('portal.projects.title')}</Typography.Title>
        <Button type="primary" onClick={() => setCreating(true)}>
          {t('portal.projects.create')}
        </Button>
      </Space>
      <CursorTable<Project>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.projects.empty')}
        expandable={{
          expandedRowRender: (p) => <Partitions project={p} quota={quota} onQuota={setQuotaTarget} />,
        }}
        columns={[
          { title: t('portal.common.name'), dataIndex: 'name' },
          { title: t('portal.common.displayName'), dataIndex: 'display_name', render: (v) => v || '—' },
          { title: t('portal.projects.quota'), key: 'quota', render: (_, p) => <Quota lines={quota('project', p.id)} /> },
          {
            title: t('portal.common.createdAt'),
            dataIndex: 'created_at',
            render: (at) => (at ? new Date(at).toLocaleString() : '—'),
          },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, p) => (
              <Button size="small" onClick={() => setQuotaTarget({ kind: 'project', id: p.id, name: p.name, lines: quota('project', p.id) })}>
                {t('portal.projects.editQuota')}
              </Button>
            ),
          },
        ]}
      />
      <Modal
        open={creating}
        title={t('portal.projects.createTitle')}
        okText={t('portal.common.create')}
        okButtonProps={{ loading: create.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setCreating(false)}
        destroyOnHidden
      >
        {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
        <Form form={form} layout="vertical" onFinish={finish}>
          <Form.Item name="name" label={t('portal.common.name')} rules={[{ required: true }]}>
            <Input placeholder="billing" />
          </Form.Item>
          <Form.Item name="display_name" label={t('portal.common.displayName')}>
            <Input />
          </Form.Item>
        </Form>
      </Modal>
      <QuotaDialog target={quotaTarget} onClose={() => setQuotaTarget(undefined)} />
    </>
  );
}
