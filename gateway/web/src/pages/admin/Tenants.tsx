import { useState } from 'react';
import { Alert, App, Button, Form, Input, Modal, Select, Skeleton, Space, Table, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { useCursorPages } from '../../components/pages';
import { ProblemAlert } from '../../components/ProblemAlert';
import { formatTime } from '../../components/time';
import { limitsText, parseLimits, parseSplit, quotaFromUsage, splitText, type QuotaLevels } from './quotaText';
import { ToneTag } from '../../components/ToneTag';

type Tenant = Answer<'/api/v1/tenants', 'get'>['items'][number];

interface QuotaForm {
  hard: string;
  data_centres: string;
  clusters: string;
  dr_reserve: string;
}

const FIELDS = ['hard', 'data_centres', 'clusters', 'dr_reserve'] as const;

/** A tenant's quota: what it holds now at each level, and its limits to edit. */
function QuotaEditor({ tenant, onDone }: { tenant: Tenant; onDone: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const [form] = Form.useForm<QuotaForm>();
  const [failure, setFailure] = useState<string>();
  const usage = useQuery({
    queryKey: ['usage', tenant.id],
    queryFn: async () => unwrap(await api.GET('/api/v1/tenants/{id}/usage', { params: { path: { id: tenant.id } } })),
  });
  const save = useMutation({
    mutationFn: async (quota: QuotaLevels) =>
      unwrap(await api.PUT('/api/v1/tenants/{id}/quota', { params: { path: { id: tenant.id } }, body: quota })),
  });

  async function submit(v: QuotaForm) {
    setFailure(undefined);
    const hard = parseLimits(v.hard ?? '');
    const dr = parseLimits(v.dr_reserve ?? '');
    const dcs = parseSplit(v.data_centres ?? '');
    const clusters = parseSplit(v.clusters ?? '');
    const bad = (
      [
        ['hard', hard],
        ['dr_reserve', dr],
        ['data_centres', dcs],
        ['clusters', clusters],
      ] as const
    ).filter(([, p]) => 'badLine' in p);
    if (bad.length) {
      form.setFields(
        bad.map(([name, p]) => ({ name, errors: [t('tenantsAdmin.badLine', { line: (p as { badLine: number }).badLine })] })),
      );
      return;
    }
    try {
      await save.mutateAsync({
        hard: hard as Record<string, string>,
        dr_reserve: dr as Record<string, string>,
        data_centres: dcs as QuotaLevels['data_centres'],
        clusters: clusters as QuotaLevels['clusters'],
      });
      void message.success(t('tenantsAdmin.quotaSaved', { name: tenant.name }));
      void client.invalidateQueries({ queryKey: ['usage', tenant.id] });
      onDone();
    } catch (e) {
      // The gateway names e.g. `hard.requests.cpu` or `data_centres.dc1`: mark the box it is in.
      const problem = toProblem(e);
      const field = FIELDS.find((f) => problem.field === f || problem.field?.startsWith(`${f}.`));
      if (field) form.setFields([{ name: field, errors: [`${problem.field}: ${problem.detail}`] }]);
      else setFailure(problem.detail);
    }
  }

  if (usage.error) return <ProblemAlert error={usage.error} onRetry={() => void usage.refetch()} />;
  if (!usage.data) return <Skeleton active />;
  const quota = quotaFromUsage(usage.data.scopes);
  const rows = usage.data.scopes
    .filter((s) => ['tenant', 'data_centre', 'cluster', 'dr_reserve'].includes(s.level))
    .flatMap((s) => s.lines.map((l) => ({ key: `${s.level}/${s.key}/${l.resource}`, level: s.level, name: s.key, ...l })));
  return (
    <>
      <Table
        size="small"
        pagination={false}
        dataSource={rows}
        style={{ marginBottom: 16 }}
        locale={{ emptyText: t('tenantsAdmin.noQuota') }}
        columns={[
          { title: t('dashboard.level'), dataIndex: 'level' },
          { title: t('dashboard.key'), dataIndex: 'name', render: (n: string) => n || '—' },
          { title: t('dashboard.resource'), dataIndex: 'resource' },
          { title: t('dashboard.hard'), dataIndex: 'hard', render: (h) => h ?? t('common.unlimited') },
          { title: t('dashboard.used'), dataIndex: 'used' },
        ]}
      />
      {failure && <Alert type="error" showIcon message={failure} style={{ marginBottom: 12 }} />}
      <Form<QuotaForm>
        form={form}
        layout="vertical"
        onFinish={submit}
        initialValues={{
          hard: limitsText(quota.hard),
          data_centres: splitText(quota.data_centres),
          clusters: splitText(quota.clusters),
          dr_reserve: limitsText(quota.dr_reserve),
        }}
      >
        <Form.Item name="hard" label={t('tenantsAdmin.hard')} extra={t('tenantsAdmin.limitsHelp')}>
          <Input.TextArea rows={3} style={{ fontFamily: 'monospace' }} placeholder="requests.cpu=16" />
        </Form.Item>
        <Form.Item name="data_centres" label={t('tenantsAdmin.dataCentres')} extra={t('tenantsAdmin.splitHelp')}>
          <Input.TextArea rows={2} style={{ fontFamily: 'monospace' }} placeholder="dc1 requests.cpu=8" />
        </Form.Item>
        <Form.Item name="clusters" label={t('tenantsAdmin.clusters')}>
          <Input.TextArea rows={2} style={{ fontFamily: 'monospace' }} placeholder="dc1-prod requests.cpu=8" />
        </Form.Item>
        <Form.Item name="dr_reserve" label={t('tenantsAdmin.drReserve')}>
          <Input.TextArea rows={2} style={{ fontFamily: 'monospace' }} placeholder="requests.cpu=4" />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={save.isPending}>
          {t('tenantsAdmin.saveQuota')}
        </Button>
      </Form>
    </>
  );
}

/** Every tenant with its status, and each one's quota. */
export default function Tenants() {
  const { t } = useTranslation();
  const [filter, setFilter] = useState<{ prefix: string; status?: 'active' | 'suspended' }>({ prefix: '' });
  const pages = useCursorPages(`${filter.prefix}/${filter.status}`);
  const [editing, setEditing] = useState<Tenant>();
  const list = useQuery({
    queryKey: ['tenants', 'admin', filter, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants', {
          params: {
            query: { name_prefix: filter.prefix || undefined, status: filter.status, limit: 50, cursor: pages.cursor || undefined },
          },
        }),
      ),
  });
  return (
    <>
      <Typography.Title level={2}>{t('tenantsAdmin.title')}</Typography.Title>
      <Space style={{ marginBottom: 16 }} wrap>
        <Input.Search
          aria-label={t('tenantsAdmin.namePrefix')}
          placeholder={t('tenantsAdmin.namePrefix')}
          allowClear
          onSearch={(prefix) => setFilter((f) => ({ ...f, prefix: prefix.trim() }))}
          style={{ width: 240 }}
        />
        <Select
          aria-label={t('tenantsAdmin.status')}
          placeholder={t('tenantsAdmin.status')}
          allowClear
          style={{ width: 160 }}
          value={filter.status}
          onChange={(status) => setFilter((f) => ({ ...f, status }))}
          options={[
            { value: 'active', label: 'active' },
            { value: 'suspended', label: 'suspended' },
          ]}
        />
      </Space>
      <CursorTable<Tenant>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={filter.prefix || filter.status ? t('tenantsAdmin.noMatch') : t('tenantsAdmin.empty')}
        columns={[
          { title: t('tenantsAdmin.name'), dataIndex: 'name' },
          { title: t('tenantsAdmin.displayName'), dataIndex: 'display_name' },
          { title: t('tenantsAdmin.contact'), dataIndex: 'contact', render: (c: string) => c || '—' },
          {
            title: t('tenantsAdmin.status'),
            dataIndex: 'status',
            render: (s: string) => <ToneTag tone={s === 'active' ? 'good' : 'warning'}>{s}</ToneTag>,
          },
          { title: t('tenantsAdmin.createdAt'), dataIndex: 'created_at', render: formatTime },
          {
            title: '',
            key: 'actions',
            render: (_, tenant) => (
              <Button size="small" onClick={() => setEditing(tenant)} aria-label={t('tenantsAdmin.quotaOf', { name: tenant.name })}>
                {t('tenantsAdmin.quota')}
              </Button>
            ),
          },
        ]}
      />
      <Modal
        open={!!editing}
        width={760}
        title={t('tenantsAdmin.quotaOf', { name: editing?.name ?? '' })}
        footer={null}
        onCancel={() => setEditing(undefined)}
        destroyOnHidden
      >
        {editing && <QuotaEditor tenant={editing} onDone={() => setEditing(undefined)} />}
      </Modal>
    </>
  );
}
