// The tenant's resource requests: the request form with every field the
// API's request takes, and the tenant's requests with their state and
// history. A platform administrator approves and provisions them
// (pages/admin/Requests.tsx).
import { useMemo, useState } from 'react';
import {
  Alert,
  App,
  Badge,
  Button,
  Card,
  Col,
  Empty,
  Form,
  Input,
  InputNumber,
  Row,
  Select,
  Space,
  Switch,
  Timeline,
  Typography,
} from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { picked, showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type ResourceRequest = Answer<'/api/v1/requests', 'get'>['items'][number];
type RequestForm = ResourceRequest['form'];
const STATES = ['draft', 'submitted', 'approved', 'rejected', 'provisioned'] as const;
type RequestState = (typeof STATES)[number];
type Cluster = Answer<'/api/v1/clusters', 'get'>['items'][number];

const FIELDS = [
  'project_name',
  'applicant',
  'email',
  'phone',
  'application',
  'purpose',
  'server_type',
  'data_centre',
  'spec_id',
  'count',
  'dr_reserve',
  'storage',
  'bandwidth',
  'oracle_needed',
  'base_services',
  'remarks',
];

// Badge dots (the word keeps the text colour: coloured tags fall under AA contrast).
const STATE_COLOURS: Record<string, 'default' | 'processing' | 'success' | 'error'> = {
  draft: 'default',
  submitted: 'processing',
  approved: 'success',
  rejected: 'error',
  provisioned: 'success',
};

/** Data centres with their clusters, narrowed to one network domain when one is picked. */
export function dataCentresOf(clusters: Cluster[], networkDomain: string | undefined) {
  const byDc = new Map<string, string[]>();
  for (const c of clusters) {
    if (networkDomain && c.network_domain !== networkDomain) continue;
    byDc.set(c.data_centre, [...(byDc.get(c.data_centre) ?? []), c.name]);
  }
  return [...byDc.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, names]) => ({ name, clusters: names }));
}

interface Values extends RequestForm {
  network_domain?: string;
}

function RequestFormCard({ tenantId }: { tenantId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { whoami } = useSession();
  const [form] = Form.useForm<Values>();
  const [failure, setFailure] = useState<string>();
  const networkDomain = Form.useWatch('network_domain', form);
  const dataCentre = Form.useWatch('data_centre', form);
  const clusters = useQuery({
    queryKey: ['clusters', 'all'],
    queryFn: async () => unwrap(await api.GET('/api/v1/clusters', { params: { query: { limit: 500 } } })).items,
  });
  const specs = useQuery({
    queryKey: ['specs', 'active'],
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/specs', { params: { query: { limit: 500, active_only: true } } })).items,
  });
  const catalog = useQuery({
    queryKey: ['templates', 'catalog'],
    queryFn: async () => unwrap(await api.GET('/api/v1/templates', { params: { query: { limit: 500 } } })).items,
  });
  const dataCentres = useMemo(() => dataCentresOf(clusters.data ?? [], networkDomain), [clusters.data, networkDomain]);
  const domains = useMemo(() => [...new Set((clusters.data ?? []).map((c) => c.network_domain))].sort(), [clusters.data]);
  const baseServices = (catalog.data ?? []).filter((x) => !x.tenant_id).map((x) => ({ value: x.name, label: x.name }));

  const file = useMutation({
    mutationFn: async ({ values, submit }: { values: Values; submit: boolean }) => {
      const { network_domain: _, ...body } = values;
      const created = unwrap(
        await api.POST('/api/v1/tenants/{id}/requests', { params: { path: { id: tenantId } }, body }),
      );
      if (!submit) return created;
      return unwrap(
        await api.POST('/api/v1/requests/{id}/{step}', {
          params: { path: { id: created.id, step: 'submit' } },
          body: {},
        }),
      );
    },
    onSuccess: (r, { submit }) => {
      void message.success(t(submit ? 'portal.request.submitted' : 'portal.request.drafted', { project: r.form.project_name }));
      void client.invalidateQueries({ queryKey: ['tenant-requests'] });
      form.resetFields(['project_name', 'application', 'purpose', 'remarks']);
    },
  });

  async function send(submit: boolean) {
    setFailure(undefined);
    let values: Values;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    try {
      await file.mutateAsync({ values, submit });
    } catch (e) {
      setFailure(showProblemOnForm(form, e, FIELDS));
    }
  }

  const required = (what: string) => [{ required: true, message: t('portal.common.required', { what }) }];
  return (
    <Card title={t('portal.request.newTitle')}>
      <Typography.Paragraph>{t('portal.request.intro')}</Typography.Paragraph>
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 16 }} />}
      {specs.data?.length === 0 && <Alert type="info" showIcon message={t('portal.request.noSpecs')} style={{ marginBottom: 16 }} />}
      <Form<Values>
        form={form}
        layout="vertical"
        name="resource-request"
        initialValues={{ count: 1, server_type: 'application-host', dr_reserve: false, oracle_needed: false, applicant: whoami?.subject ?? '' }}
        onFinish={() => void send(true)}
      >
        <Row gutter={16}>
          <Col xs={24} md={8}>
            <Form.Item name="project_name" label={t('portal.request.projectName')} rules={required(t('portal.request.projectName'))}>
              <Input />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="application" label={t('portal.request.application')} rules={required(t('portal.request.application'))}>
              <Input />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="server_type" label={t('portal.request.serverType')}>
              <Select
                options={[
                  { value: 'application-host', label: 'application-host' },
                  { value: 'mpp', label: 'mpp' },
                  { value: 'hadoop', label: 'hadoop' },
                ]}
              />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="applicant" label={t('portal.request.applicant')} rules={required(t('portal.request.applicant'))}>
              <Input />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="email" label={t('portal.request.email')} rules={[...required(t('portal.request.email')), { type: 'email' }]}>
              <Input type="email" />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="phone" label={t('portal.request.phone')}>
              <Input type="tel" />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="network_domain" label={t('portal.request.networkDomain')} extra={t('portal.request.networkDomainHelp')}>
              <Select
                allowClear
                placeholder={t('portal.request.anyNetworkDomain')}
                options={domains.map((d) => ({ value: d, label: d }))}
              />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item
              name="data_centre"
              label={t('portal.request.dataCentre')}
              rules={[picked(t('portal.common.required', { what: t('portal.request.dataCentre') }))]}
              extra={
                dataCentre
                  ? t('portal.request.dataCentreClusters', {
                      clusters: dataCentres.find((d) => d.name === dataCentre)?.clusters.join(', ') || '—',
                    })
                  : undefined
              }
            >
              <Select
                showSearch
                loading={clusters.isPending}
                options={dataCentres.map((d) => ({ value: d.name, label: d.name }))}
              />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="spec_id" label={t('portal.request.spec')} rules={[picked(t('portal.common.required', { what: t('portal.request.spec') }))]}>
              <Select
                showSearch
                optionFilterProp="label"
                loading={specs.isPending}
                options={specs.data?.map((s) => ({
                  value: s.id,
                  label: `${s.display_name || s.name} (${Object.entries(s.amounts)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(', ')})`,
                }))}
              />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="count" label={t('portal.request.count')} rules={required(t('portal.request.count'))}>
              <InputNumber min={1} max={10000} precision={0} style={{ width: '100%' }} />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="dr_reserve" label={t('portal.request.drReserve')} valuePropName="checked">
              <Switch />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="storage" label={t('portal.request.storage')}>
              <Input placeholder="500Gi" />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="bandwidth" label={t('portal.request.bandwidth')}>
              <Input placeholder="100M" />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="base_services" label={t('portal.request.baseServices')}>
              <Select mode="tags" options={baseServices} />
            </Form.Item>
          </Col>
          <Col xs={24} md={8}>
            <Form.Item name="oracle_needed" label={t('portal.request.oracle')} valuePropName="checked">
              <Switch />
            </Form.Item>
          </Col>
          <Col xs={24} md={12}>
            <Form.Item name="purpose" label={t('portal.request.purpose')}>
              <Input.TextArea rows={2} />
            </Form.Item>
          </Col>
          <Col xs={24} md={12}>
            <Form.Item name="remarks" label={t('portal.request.remarks')}>
              <Input.TextArea rows={2} />
            </Form.Item>
          </Col>
        </Row>
        <Space>
          <Button type="primary" htmlType="submit" loading={file.isPending && file.variables?.submit}>
            {t('portal.request.submit')}
          </Button>
          <Button onClick={() => void send(false)} loading={file.isPending && !file.variables?.submit}>
            {t('portal.request.saveDraft')}
          </Button>
        </Space>
      </Form>
    </Card>
  );
}

function History({ request }: { request: ResourceRequest }) {
  return (
    <Timeline
      items={request.steps.map((s) => ({
        children: `${s.at ? new Date(s.at).toLocaleString() : ''} ${s.from ?? '∅'} → ${s.to} · ${s.actor}${s.reason ? ` · ${s.reason}` : ''}`,
      }))}
    />
  );
}

function TenantRequests({ tenantId }: { tenantId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const [state, setState] = useState<RequestState>();
  const pages = useCursorPages(`${tenantId}/${state}`);
  const specs = useQuery({
    queryKey: ['specs', 'all'],
    queryFn: async () => unwrap(await api.GET('/api/v1/specs', { params: { query: { limit: 500 } } })).items,
  });
  const list = useQuery({
    queryKey: ['tenant-requests', tenantId, state, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/requests', {
          params: { query: { limit: 50, cursor: pages.cursor, tenant_id: tenantId, state } },
        }),
      ),
  });
  const submit = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.POST('/api/v1/requests/{id}/{step}', { params: { path: { id, step: 'submit' } }, body: {} })),
    onSuccess: (r) => {
      void message.success(t('portal.request.submitted', { project: r.form.project_name }));
      void client.invalidateQueries({ queryKey: ['tenant-requests'] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  const specName = (id: string) => {
    const s = specs.data?.find((x) => x.id === id);
    return s ? s.display_name || s.name : id.slice(0, 8);
  };
  return (
    <Card
      title={t('portal.request.mine')}
      extra={
        <Select<RequestState | ''>
          aria-label={t('portal.request.filter')}
          style={{ width: 160 }}
          value={state ?? ''}
          onChange={(v) => setState(v || undefined)}
          options={[
            { value: '', label: t('portal.request.allStates') },
            ...STATES.map((s) => ({ value: s, label: s })),
          ]}
        />
      }
    >
      <CursorTable<ResourceRequest>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.request.empty')}
        expandable={{ expandedRowRender: (r) => <History request={r} /> }}
        columns={[
          { title: t('requests.project'), key: 'project', render: (_, r) => r.form.project_name },
          { title: t('requests.application'), key: 'application', render: (_, r) => r.form.application },
          { title: t('requests.dataCentre'), key: 'dc', render: (_, r) => r.form.data_centre },
          { title: t('requests.spec'), key: 'spec', render: (_, r) => `${specName(r.form.spec_id)} × ${r.form.count}` },
          {
            title: t('requests.dr'),
            key: 'dr',
            render: (_, r) => (r.form.dr_reserve ? t('portal.common.yes') : t('portal.common.no')),
          },
          { title: t('requests.purpose'), key: 'purpose', render: (_, r) => r.form.purpose || '—' },
          {
            title: t('portal.common.state'),
            key: 'state',
            render: (_, r) => <Badge status={STATE_COLOURS[r.state] ?? 'default'} text={r.state} />,
          },
          {
            title: t('portal.common.createdAt'),
            key: 'created',
            render: (_, r) => (r.created_at ? new Date(r.created_at).toLocaleString() : '—'),
          },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, r) =>
              r.state === 'draft' ? (
                <Button size="small" loading={submit.isPending && submit.variables === r.id} onClick={() => submit.mutate(r.id)}>
                  {t('portal.request.submitDraft')}
                </Button>
              ) : null,
          },
        ]}
      />
    </Card>
  );
}

export default function ResourceRequests() {
  const { t } = useTranslation();
  const { tenantId } = useSession();
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Typography.Title level={2}>{t('portal.request.title')}</Typography.Title>
      {!tenantId ? (
        <Empty description={t('portal.common.noTenant')} />
      ) : (
        <>
          <RequestFormCard tenantId={tenantId} />
          <TenantRequests tenantId={tenantId} />
        </>
      )}
    </Space>
  );
}
