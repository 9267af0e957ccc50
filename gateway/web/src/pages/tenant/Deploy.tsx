// The deploy wizard: a published template version -> its parameters (a
// form generated from the version's parameter schema, or value overrides
// for a Helm chart) -> placement (clusters in one or more data centres, DR
// tier) -> release strategy -> the application is created and its page opens.
import { useEffect, useMemo, useState } from 'react';
import {
  Alert,
  App,
  Button,
  Card,
  Empty,
  Form,
  Input,
  InputNumber,
  Radio,
  Select,
  Space,
  Steps,
  Switch,
  Typography,
} from 'antd';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { useNavigate, useSearchParams } from 'react-router-dom';
import { api, unwrap } from '../../api/client';
import { toProblem } from '../../api/problem';
import { picked } from '../../components/formProblem';
import { Health } from '../../components/Health';
import {
  initialParameterValues,
  isChart,
  parametersOf,
  parameterValues,
  ParametersFields,
} from '../../components/ParametersForm';
import { useSession } from '../../session';
import {
  placementBody,
  problemStep,
  STEPS,
  strategyBody,
  type DrTier,
  type StrategyAnswers,
} from './deployment';
import type { components } from '../../api/schema';

// The request body's parts, as the OpenAPI document describes them.
type Schemas = components['schemas'];

interface Values {
  template_id?: string;
  template_version_id?: string;
  name: string;
  environment: 'production' | 'test';
  project_id?: string;
  parameters?: Record<string, unknown>;
  chart_values?: string;
  clusters: string[];
  replicas?: Record<string, number | null>;
  dr_tier?: DrTier;
  toleration_seconds?: number | null;
  singleton?: boolean;
  strategy: StrategyAnswers;
}

export default function Deploy() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const navigate = useNavigate();
  const [search] = useSearchParams();
  const { tenantId, projectId } = useSession();
  const [form] = Form.useForm<Values>();
  const [current, setCurrent] = useState(0);
  const [failure, setFailure] = useState<string>();
  const templateId = Form.useWatch('template_id', form);
  const versionId = Form.useWatch('template_version_id', form);
  const chosenClusters = Form.useWatch('clusters', form) ?? [];
  const strategyType = Form.useWatch(['strategy', 'type'], form);
  const drTier = Form.useWatch('dr_tier', form);

  const templates = useQuery({
    queryKey: ['templates', tenantId, 'all'],
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/templates', { params: { query: { limit: 500, tenant_id: tenantId } } })).items,
  });
  const versions = useQuery({
    queryKey: ['template-versions', templateId, 'all'],
    enabled: !!templateId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/templates/{id}/versions', {
          params: { path: { id: templateId! }, query: { limit: 500 } },
        }),
      ).items,
  });
  const published = useMemo(() => (versions.data ?? []).filter((v) => v.state === 'published'), [versions.data]);
  const version = published.find((v) => v.id === versionId);
  const parameters = useMemo(() => parametersOf(version?.spec), [version]);
  const chart = isChart(version?.spec);
  const clusters = useQuery({
    queryKey: ['clusters', 'all'],
    queryFn: async () => unwrap(await api.GET('/api/v1/clusters', { params: { query: { limit: 500 } } })).items,
  });
  const projects = useQuery({
    queryKey: ['projects', tenantId],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/projects', { params: { path: { id: tenantId! }, query: { limit: 500 } } }),
      ).items,
  });

  // Arriving from the catalog picks its template (and version).
  useEffect(() => {
    const template = search.get('template');
    if (template) form.setFieldsValue({ template_id: template, template_version_id: search.get('version') ?? undefined });
  }, [search, form]);
  // The newest published version once a template is picked, unless one is.
  useEffect(() => {
    if (!versionId && published.length > 0) form.setFieldValue('template_version_id', published[0].id);
  }, [published, versionId, form]);
  // A new version's defaults fill its parameters.
  useEffect(() => {
    form.setFieldValue('parameters', initialParameterValues(parameters));
  }, [parameters, form]);

  const deploy = useMutation({
    mutationFn: async (v: Values) => {
      const values = chart ? (JSON.parse(v.chart_values || '{}') as Record<string, unknown>) : parameterValues(parameters, v.parameters);
      const placement = placementBody({
        clusters: v.clusters,
        replicas: v.replicas,
        dr_tier: v.dr_tier,
        toleration_seconds: v.toleration_seconds,
        singleton: v.singleton,
      });
      return unwrap(
        await api.POST('/api/v1/tenants/{id}/applications', {
          params: { path: { id: tenantId! } },
          body: {
            name: v.name,
            environment: v.environment,
            project_id: v.project_id || undefined,
            template_version_id: v.template_version_id!,
            parameters: values as Schemas['ParameterValues'],
            placement: placement as Schemas['ApplicationPlacement'],
            strategy: strategyBody(v.strategy, v.clusters) as Schemas['Strategy'],
          },
        }),
      );
    },
  });

  const stepFields: (string | (string | number)[])[][] = [
    ['template_id', 'template_version_id', 'name', 'environment', 'project_id'],
    chart ? ['chart_values'] : parameters.map((p) => ['parameters', p.name]),
    ['clusters', 'dr_tier', 'toleration_seconds', ...chosenClusters.map((c) => ['replicas', c])],
    [['strategy', 'type'], ['strategy', 'steps'], ['strategy', 'match_name'], ['strategy', 'match_value']],
  ];

  async function next() {
    try {
      await form.validateFields(stepFields[current]);
      setCurrent(current + 1);
    } catch {
      // The fields show what is wrong.
    }
  }

  async function create() {
    setFailure(undefined);
    let values: Values;
    try {
      await form.validateFields(stepFields[current]);
      values = form.getFieldsValue(true) as Values;
    } catch {
      return;
    }
    try {
      const app = await deploy.mutateAsync(values);
      void message.success(t('portal.deploy.deployed', { name: app.name }));
      navigate(`/applications/${app.id}`);
    } catch (e) {
      const problem = toProblem(e);
      const where = problemStep(problem.field);
      const name = where.step === 'parameters' && chart ? ['chart_values'] : where.name;
      setCurrent(STEPS.indexOf(where.step));
      if (name) form.setFields([{ name, errors: [problem.detail] }]);
      else setFailure(problem.field ? `${problem.field}: ${problem.detail}` : problem.detail);
    }
  }

  const title = <Typography.Title level={2}>{t('portal.deploy.title')}</Typography.Title>;
  if (!tenantId) {
    return (
      <>
        {title}
        <Empty description={t('portal.common.noTenant')} />
      </>
    );
  }
  const pane = (i: number) => ({ display: current === i ? undefined : 'none' });
  const stepTitles = [
    t('portal.deploy.stepVersion'),
    t('portal.deploy.stepParameters'),
    t('portal.deploy.stepPlacement'),
    t('portal.deploy.stepStrategy'),
  ];
  return (
    <>
      {title}
      <Steps current={current} items={stepTitles.map((s) => ({ title: s }))} style={{ marginBottom: 24 }} />
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 16 }} />}
      <Card title={stepTitles[current]}>
        <Form<Values>
          form={form}
          layout="vertical"
          name="deploy"
          style={{ maxWidth: 720 }}
          initialValues={{
            environment: 'test',
            project_id: projectId ?? '',
            clusters: [],
            dr_tier: 'manual',
            toleration_seconds: 10,
            singleton: false,
            chart_values: '{}',
            strategy: { type: 'rolling', steps: '5, 25, 50, 100', pause_seconds: 0, pause: true, match_kind: 'header', gray_by: 'cluster' },
          }}
        >
          <div style={pane(0)}>
            {templates.data?.length === 0 && <Alert type="info" showIcon message={t('portal.deploy.noTemplates')} style={{ marginBottom: 16 }} />}
            <Form.Item name="template_id" label={t('portal.deploy.template')} rules={[picked(t('portal.common.required', { what: t('portal.deploy.template') }))]}>
              <Select
                showSearch
                optionFilterProp="label"
                loading={templates.isPending}
                onChange={() => form.setFieldValue('template_version_id', undefined)}
                options={templates.data?.map((x) => ({
                  value: x.id,
                  label: x.tenant_id ? x.name : `${x.name} (${t('portal.templates.platform')})`,
                }))}
              />
            </Form.Item>
            <Form.Item
              name="template_version_id"
              label={t('portal.deploy.version')}
              rules={[picked(t('portal.common.required', { what: t('portal.deploy.version') }))]}
              extra={templateId && versions.data && published.length === 0 ? t('portal.deploy.noPublished') : undefined}
            >
              <Select
                showSearch
                optionFilterProp="label"
                loading={versions.isFetching}
                options={published.map((v) => ({ value: v.id, label: `${v.version}${v.note ? ` — ${v.note}` : ''}` }))}
              />
            </Form.Item>
            <Form.Item
              name="name"
              label={t('portal.deploy.name')}
              rules={[{ required: true }, { pattern: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, message: 'a-z, 0-9, -' }]}
            >
              <Input placeholder="shop" />
            </Form.Item>
            <Form.Item name="environment" label={t('portal.deploy.environment')}>
              <Radio.Group
                options={[
                  { value: 'test', label: t('portal.deploy.test') },
                  { value: 'production', label: t('portal.deploy.production') },
                ]}
              />
            </Form.Item>
            <Form.Item name="project_id" label={t('portal.common.project')}>
              <Select
                options={[
                  { value: '', label: t('portal.common.anyProject') },
                  ...(projects.data ?? []).map((p) => ({ value: p.id, label: p.name })),
                ]}
              />
            </Form.Item>
          </div>
          <div style={pane(1)}>
            {chart ? (
              <Form.Item
                name="chart_values"
                label={t('portal.deploy.chartValues')}
                extra={t('portal.deploy.chartValuesHelp')}
                rules={[
                  {
                    validator: async (_, text: string) => {
                      try {
                        JSON.parse(text || '{}');
                      } catch (e) {
                        throw new Error(t('portal.templates.notJson', { why: (e as Error).message }));
                      }
                    },
                  },
                ]}
              >
                <Input.TextArea rows={10} spellCheck={false} style={{ fontFamily: 'monospace' }} />
              </Form.Item>
            ) : parameters.length === 0 ? (
              <Empty description={t('portal.templates.noParameters')} />
            ) : (
              <ParametersFields parameters={parameters} />
            )}
          </div>
          <div style={pane(2)}>
            {clusters.data?.length === 0 && <Alert type="info" showIcon message={t('portal.deploy.noClusters')} style={{ marginBottom: 16 }} />}
            <Form.Item
              name="clusters"
              label={t('portal.deploy.clusters')}
              extra={t('portal.deploy.clustersHelp')}
              rules={[picked(t('portal.deploy.chooseCluster'))]}
            >
              <Select
                mode="multiple"
                // No search box: its caret-width input fails axe's contrast check once focused.
                showSearch={false}
                loading={clusters.isPending}
                optionFilterProp="label"
                options={Object.entries(
                  (clusters.data ?? []).reduce<Record<string, { value: string; label: string }[]>>((byDc, c) => {
                    (byDc[c.data_centre] ??= []).push({
                      value: c.name,
                      label: `${c.name} · ${c.environment} · ${c.network_domain} · ${c.condition.status}`,
                    });
                    return byDc;
                  }, {}),
                ).map(([dc, options]) => ({ label: dc, title: dc, options }))}
              />
            </Form.Item>
            {chosenClusters.map((c) => {
              const cluster = clusters.data?.find((x) => x.name === c);
              return (
                <Form.Item key={c} label={`${t('portal.deploy.replicas')}: ${c}`}>
                  <Space>
                    <Form.Item name={['replicas', c]} noStyle>
                      <InputNumber min={0} max={1000} precision={0} aria-label={`${t('portal.deploy.replicas')}: ${c}`} />
                    </Form.Item>
                    {cluster && <Health value={cluster.condition.status} title={cluster.condition.message} />}
                  </Space>
                </Form.Item>
              );
            })}
            <Form.Item name="dr_tier" label={t('portal.deploy.drTier')}>
              <Radio.Group
                options={[
                  { value: 'manual', label: t('portal.deploy.drManual') },
                  { value: 'auto-failover', label: t('portal.deploy.drAuto') },
                  { value: 'active-active', label: t('portal.deploy.drActive') },
                ]}
              />
            </Form.Item>
            {drTier && drTier !== 'manual' && (
              <Form.Item name="toleration_seconds" label={t('portal.deploy.toleration')}>
                <InputNumber min={0} max={3600} precision={0} />
              </Form.Item>
            )}
            <Form.Item name="singleton" label={t('portal.deploy.singleton')} valuePropName="checked">
              <Switch />
            </Form.Item>
          </div>
          <div style={pane(3)}>
            <Form.Item name={['strategy', 'type']} label={t('portal.deploy.strategy')}>
              <Select
                options={(['rolling', 'recreate', 'blue-green', 'canary', 'ab', 'shadow', 'gray'] as const).map((s) => ({
                  value: s,
                  label: s,
                }))}
              />
            </Form.Item>
            {strategyType === 'rolling' && (
              <Space>
                <Form.Item name={['strategy', 'max_surge']} label={t('portal.deploy.maxSurge')}>
                  <Input placeholder="25%" />
                </Form.Item>
                <Form.Item name={['strategy', 'max_unavailable']} label={t('portal.deploy.maxUnavailable')}>
                  <Input placeholder="0" />
                </Form.Item>
              </Space>
            )}
            {strategyType === 'canary' && (
              <>
                <Form.Item
                  name={['strategy', 'steps']}
                  label={t('portal.deploy.steps')}
                  rules={[{ required: true }, { pattern: /^\s*\d+(\s*[, ]\s*\d+)*\s*$/, message: '5, 25, 50, 100' }]}
                >
                  <Input />
                </Form.Item>
                <Form.Item name={['strategy', 'pause_seconds']} label={t('portal.deploy.pauseSeconds')}>
                  <InputNumber min={0} precision={0} />
                </Form.Item>
                <Form.Item name={['strategy', 'pause']} label={t('portal.deploy.manualPause')} valuePropName="checked">
                  <Switch />
                </Form.Item>
              </>
            )}
            {strategyType === 'ab' && (
              <Space wrap>
                <Form.Item name={['strategy', 'match_kind']} label={t('portal.deploy.matchKind')}>
                  <Select style={{ width: 120 }} options={['header', 'cookie', 'query'].map((k) => ({ value: k, label: k }))} />
                </Form.Item>
                <Form.Item name={['strategy', 'match_name']} label={t('portal.deploy.matchName')} rules={[{ required: true }]}>
                  <Input placeholder="variant" />
                </Form.Item>
                <Form.Item name={['strategy', 'match_value']} label={t('portal.deploy.matchValue')} rules={[{ required: true }]}>
                  <Input placeholder="b" />
                </Form.Item>
              </Space>
            )}
            {strategyType === 'gray' && (
              <>
                <Form.Item name={['strategy', 'gray_by']} label={t('portal.deploy.grayBy')}>
                  <Radio.Group options={['cluster', 'partition'].map((k) => ({ value: k, label: k }))} />
                </Form.Item>
                <Typography.Paragraph>
                  {t('portal.deploy.grayOrder')}: {chosenClusters.join(' → ') || '—'}
                </Typography.Paragraph>
                <Form.Item name={['strategy', 'gray_pause']} label={t('portal.deploy.grayPause')}>
                  <InputNumber min={0} precision={0} />
                </Form.Item>
              </>
            )}
          </div>
        </Form>
        <Space style={{ marginTop: 16 }}>
          {current > 0 && <Button onClick={() => setCurrent(current - 1)}>{t('portal.deploy.back')}</Button>}
          {current < STEPS.length - 1 ? (
            <Button type="primary" onClick={() => void next()}>
              {t('portal.deploy.next')}
            </Button>
          ) : (
            <Button type="primary" loading={deploy.isPending} onClick={() => void create()}>
              {t('portal.deploy.create')}
            </Button>
          )}
        </Space>
      </Card>
    </>
  );
}
