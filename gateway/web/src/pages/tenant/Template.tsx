// One template: its versions (drafts are editable, published ones are
// deployable and never change), the version editor whose validation
// messages land at the field the API names, and publish.
import { useEffect, useState } from 'react';
import { Alert, App, Badge, Button, Card, Descriptions, Empty, Form, Input, Skeleton, Space, Table, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useParams, useSearchParams } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { placeProblem } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { isChart, parametersOf } from '../../components/ParametersForm';
import { ProblemAlert } from '../../components/ProblemAlert';
import type { components } from '../../api/schema';

type Version = Answer<'/api/v1/templates/{id}/versions', 'get'>['items'][number];

/** A starting spec for a template's first version. */
const FIRST_SPEC = {
  parameters: [
    { name: 'tag', type: 'string', required: true, description: 'Image tag' },
    { name: 'replicas', type: 'integer', default: 2, minimum: 1, maximum: 10 },
  ],
  services: [
    {
      name: 'web',
      controller: 'Deployment',
      replicas: '${replicas}',
      containers: [
        {
          name: 'web',
          image: 'registry.example/web:${tag}',
          resources: { cpu_request: '100m', cpu_limit: '500m', memory_request: '128Mi', memory_limit: '256Mi' },
          ports: [{ name: 'http', container_port: 8080, protocol: 'TCP' }],
        },
      ],
    },
  ],
};

/** Which editor field an API problem belongs to; the spec's inner path stays in the message. */
export function editorField(field: string): string | undefined {
  if (field === 'version' || field === 'note') return field;
  if (field === 'spec' || field.startsWith('spec.') || field.startsWith('spec[')) return 'spec';
  // The spec's own checks name paths inside it (`services[0].name`, `parameters[1].default`).
  if (/^(services|parameters)\b/.test(field)) return 'spec';
  return undefined;
}

interface EditorValues {
  version: string;
  note?: string;
  spec: string;
}

function Editor({
  templateId,
  templateName,
  version,
  base,
  onDone,
}: {
  templateId: string;
  templateName: string;
  /** The draft being edited; none: a new version. */
  version?: Version;
  /** The spec a new version starts from. */
  base?: unknown;
  onDone: () => void;
}) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const [form] = Form.useForm<EditorValues>();
  const [failure, setFailure] = useState<string>();
  const save = useMutation({
    mutationFn: async (v: EditorValues & { parsed: components['schemas']['TemplateSpec'] }) => {
      if (version) {
        return unwrap(
          await api.PATCH('/api/v1/template-versions/{id}', {
            params: { path: { id: version.id } },
            body: { spec: v.parsed, note: v.note ?? '' },
          }),
        );
      }
      return unwrap(
        await api.POST('/api/v1/templates/{id}/versions', {
          params: { path: { id: templateId } },
          body: { version: v.version, note: v.note, spec: v.parsed },
        }),
      );
    },
  });
  async function finish(v: EditorValues) {
    setFailure(undefined);
    let parsed: components['schemas']['TemplateSpec'];
    try {
      parsed = JSON.parse(v.spec) as components['schemas']['TemplateSpec'];
    } catch (e) {
      form.setFields([{ name: 'spec', errors: [t('portal.templates.notJson', { why: (e as Error).message })] }]);
      return;
    }
    try {
      const saved = await save.mutateAsync({ ...v, parsed });
      void message.success(t('portal.templates.saved', { version: saved.version }));
      void client.invalidateQueries({ queryKey: ['template-versions', templateId] });
      onDone();
    } catch (e) {
      const problem = toProblem(e);
      // A path inside the spec leads the message shown at the spec field.
      const inner = !!problem.field && problem.field !== 'spec' && editorField(problem.field) === 'spec';
      const shown = inner ? { ...problem, detail: `${problem.field!.replace(/^spec\.?/, '')}: ${problem.detail}` } : problem;
      setFailure(placeProblem(form, shown, editorField));
    }
  }
  return (
    <Card
      title={
        version
          ? t('portal.templates.editorTitle', { version: version.version })
          : t('portal.templates.newVersionTitle', { name: templateName })
      }
    >
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
      <Form<EditorValues>
        form={form}
        layout="vertical"
        name="template-version"
        onFinish={finish}
        initialValues={{
          version: version?.version ?? '',
          note: version?.note ?? '',
          spec: JSON.stringify(version?.spec ?? base ?? FIRST_SPEC, null, 2),
        }}
      >
        <Form.Item name="version" label={t('portal.templates.version')} rules={[{ required: true }]}>
          <Input placeholder="1.0.0" disabled={!!version} />
        </Form.Item>
        <Form.Item name="note" label={t('portal.templates.note')}>
          <Input />
        </Form.Item>
        <Form.Item name="spec" label={t('portal.templates.spec')} extra={t('portal.templates.specHelp')} rules={[{ required: true }]}>
          <Input.TextArea rows={18} spellCheck={false} style={{ fontFamily: 'monospace' }} />
        </Form.Item>
        <Space>
          <Button type="primary" htmlType="submit" loading={save.isPending}>
            {t('portal.common.save')}
          </Button>
          <Button onClick={onDone}>{t('portal.common.cancel')}</Button>
        </Space>
      </Form>
    </Card>
  );
}

/** A published (or draft) version as read: its parameters and services, or its chart's files. */
function VersionView({ version }: { version: Version }) {
  const { t } = useTranslation();
  const parameters = parametersOf(version.spec);
  const spec = version.spec as { services?: { name?: string; controller?: string }[]; chart?: { files?: object } };
  return (
    <Card title={t('portal.templates.editorTitle', { version: version.version })}>
      {version.state === 'published' && <Alert type="info" showIcon message={t('portal.templates.readOnly')} style={{ marginBottom: 12 }} />}
      {isChart(version.spec) ? (
        <Typography.Paragraph>
          {t('portal.templates.chart', { count: Object.keys(spec.chart?.files ?? {}).length })}:{' '}
          {Object.keys(spec.chart?.files ?? {}).join(', ')}
        </Typography.Paragraph>
      ) : (
        <>
          <Typography.Title level={4}>{t('portal.templates.parameters')}</Typography.Title>
          <Table
            size="small"
            rowKey="name"
            pagination={false}
            dataSource={parameters}
            locale={{ emptyText: <Empty description={t('portal.templates.noParameters')} /> }}
            columns={[
              { title: t('portal.common.name'), dataIndex: 'name' },
              { title: 'type', dataIndex: 'type' },
              { title: 'default', dataIndex: 'default', render: (v) => (v === undefined ? '—' : JSON.stringify(v)) },
              { title: 'required', dataIndex: 'required', render: (v) => (v ? t('portal.common.yes') : t('portal.common.no')) },
              { title: t('portal.templates.description'), dataIndex: 'description' },
            ]}
          />
          <Typography.Title level={4} style={{ marginTop: 16 }}>
            {t('portal.templates.services')}
          </Typography.Title>
          <Typography.Paragraph>
            {(spec.services ?? []).map((s) => `${s.name} (${s.controller ?? 'Deployment'})`).join(', ') || '—'}
          </Typography.Paragraph>
        </>
      )}
      <pre style={{ maxHeight: 320, overflow: 'auto', background: '#f5f5f5', padding: 12 }} tabIndex={0}>
        {JSON.stringify(version.spec, null, 2)}
      </pre>
    </Card>
  );
}

export default function TemplatePage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { id = '' } = useParams();
  const [search] = useSearchParams();
  const pages = useCursorPages(id);
  const [editing, setEditing] = useState<{ version?: Version; base?: unknown } | undefined>();
  const [viewing, setViewing] = useState<Version>();
  const template = useQuery({
    queryKey: ['template', id],
    queryFn: async () => unwrap(await api.GET('/api/v1/templates/{id}', { params: { path: { id } } })),
  });
  const versions = useQuery({
    queryKey: ['template-versions', id, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/templates/{id}/versions', {
          params: { path: { id }, query: { limit: 50, cursor: pages.cursor } },
        }),
      ),
  });
  // A template just created opens its first version's editor.
  useEffect(() => {
    if (search.get('new') && versions.data?.items.length === 0 && !editing) setEditing({});
  }, [versions.data]);
  const publish = useMutation({
    mutationFn: async (v: Version) =>
      unwrap(await api.POST('/api/v1/template-versions/{id}/publish', { params: { path: { id: v.id } } })),
    onSuccess: (v) => {
      void message.success(t('portal.templates.publishedDone', { version: v.version }));
      void client.invalidateQueries({ queryKey: ['template-versions', id] });
    },
    onError: (e) => {
      const p = toProblem(e);
      void message.error(p.field ? `${p.field}: ${p.detail}` : p.detail);
    },
  });
  if (template.error) return <ProblemAlert error={template.error} onRetry={() => void template.refetch()} />;
  if (!template.data) return <Skeleton active />;
  const x = template.data;
  const latest = versions.data?.items[0];
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Link to="/templates">{t('portal.templates.back')}</Link>
      <Typography.Title level={2}>{x.name}</Typography.Title>
      <Descriptions size="small" column={{ xs: 1, md: 3 }}>
        <Descriptions.Item label={t('portal.templates.kind')}>
          {x.tenant_id ? t('portal.templates.tenant') : t('portal.templates.platform')}
        </Descriptions.Item>
        <Descriptions.Item label={t('portal.templates.description')}>{x.description || '—'}</Descriptions.Item>
      </Descriptions>
      <Card
        title={t('portal.templates.versions')}
        extra={
          <Button type="primary" onClick={() => { setViewing(undefined); setEditing({ base: latest?.spec }); }}>
            {t('portal.templates.newVersion')}
          </Button>
        }
      >
        <CursorTable<Version>
          rowKey="id"
          pages={pages}
          items={versions.data?.items}
          nextCursor={versions.data?.next_cursor}
          error={versions.error}
          onRetry={() => void versions.refetch()}
          empty={t('portal.templates.noVersions')}
          columns={[
            { title: t('portal.templates.version'), dataIndex: 'version' },
            {
              title: t('portal.common.state'),
              dataIndex: 'state',
              render: (s) =>
                <Badge status={s === 'published' ? 'success' : 'default'} text={s === 'published' ? t('portal.templates.published') : t('portal.templates.draft')} />,
            },
            { title: t('portal.templates.note'), dataIndex: 'note', render: (n) => n || '—' },
            { title: t('portal.common.createdBy'), dataIndex: 'created_by' },
            {
              title: t('portal.common.createdAt'),
              dataIndex: 'created_at',
              render: (at) => (at ? new Date(at).toLocaleString() : '—'),
            },
            {
              title: t('portal.common.actions'),
              key: 'actions',
              render: (_, v) => (
                <Space>
                  <Button size="small" onClick={() => { setEditing(undefined); setViewing(v); }}>
                    {t('portal.templates.view')}
                  </Button>
                  {v.state === 'draft' ? (
                    <>
                      <Button size="small" onClick={() => { setViewing(undefined); setEditing({ version: v }); }}>
                        {t('portal.templates.edit')}
                      </Button>
                      <Button
                        size="small"
                        type="primary"
                        loading={publish.isPending && publish.variables?.id === v.id}
                        onClick={() => publish.mutate(v)}
                      >
                        {t('portal.templates.publish')}
                      </Button>
                    </>
                  ) : (
                    <Link to={`/deploy?template=${id}&version=${v.id}`}>{t('portal.templates.deploy')}</Link>
                  )}
                </Space>
              ),
            },
          ]}
        />
      </Card>
      {editing && (
        <Editor
          key={editing.version?.id ?? 'new'}
          templateId={id}
          templateName={x.name}
          version={editing.version}
          base={editing.base}
          onDone={() => setEditing(undefined)}
        />
      )}
      {viewing && !editing && <VersionView version={viewing} />}
    </Space>
  );
}
