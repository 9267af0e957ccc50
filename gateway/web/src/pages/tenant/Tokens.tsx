// The tenant's API tokens for scripts and CI: create (the secret is shown
// once, then only its prefix is known), list, revoke.
import { useState } from 'react';
import { Alert, App, Badge, Button, Empty, Form, Input, InputNumber, Modal, Popconfirm, Select, Space, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type Token = Answer<'/api/v1/tokens', 'get'>[number];
type Role = Token['role'];

interface CreateValues {
  name: string;
  role: Role;
  project_id?: string;
  expires_in_days?: number | null;
}

function when(at: string | null | undefined) {
  return at ? new Date(at).toLocaleString() : '—';
}

export default function Tokens() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { tenantId } = useSession();
  // The API answers every token of the tenant at once: one page.
  const pages = useCursorPages(tenantId);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; secret: string }>();
  const [failure, setFailure] = useState<string>();
  const [form] = Form.useForm<CreateValues>();
  const list = useQuery({
    queryKey: ['tokens', tenantId],
    enabled: !!tenantId,
    queryFn: async () => unwrap(await api.GET('/api/v1/tokens', { params: { query: { tenant_id: tenantId } } })),
  });
  const projects = useQuery({
    queryKey: ['projects', tenantId],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/projects', { params: { path: { id: tenantId! }, query: { limit: 500 } } }),
      ).items,
  });
  const create = useMutation({
    mutationFn: async (v: CreateValues) =>
      unwrap(
        await api.POST('/api/v1/tokens', {
          body: {
            name: v.name,
            role: v.role,
            tenant_id: tenantId!,
            project_id: v.project_id || undefined,
            expires_in_days: v.expires_in_days ?? undefined,
          },
        }),
      ),
  });
  const revoke = useMutation({
    mutationFn: async (token: Token) => {
      unwrap(await api.DELETE('/api/v1/tokens/{id}', { params: { path: { id: token.id } } }));
      return token;
    },
    onSuccess: (token) => {
      void message.success(t('portal.tokens.revokedDone', { name: token.name }));
      void client.invalidateQueries({ queryKey: ['tokens', tenantId] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  async function finish(v: CreateValues) {
    setFailure(undefined);
    try {
      const created = await create.mutateAsync(v);
      setCreating(false);
      setSecret({ name: created.name, secret: created.secret });
      void client.invalidateQueries({ queryKey: ['tokens', tenantId] });
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['name', 'role', 'project_id', 'expires_in_days']));
    }
  }
  const title = <Typography.Title level={2}>{t('portal.tokens.title')}</Typography.Title>;
  if (!tenantId) {
    return (
      <>
        {title}
        <Empty description={t('portal.common.noTenant')} />
      </>
    );
  }
  const projectName = (id?: string | null) =>
    id ? (projects.data?.find((p) => p.id === id)?.name ?? id.slice(0, 8)) : t('portal.common.anyProject');
  return (
    <>
      <Space style={{ width: '100%', justifyContent: 'space-between' }}>
        {title}
        <Button type="primary" onClick={() => setCreating(true)}>
          {t('portal.tokens.create')}
        </Button>
      </Space>
      <CursorTable<Token>
        rowKey="id"
        pages={pages}
        items={list.data}
        nextCursor={undefined}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.tokens.empty')}
        columns={[
          { title: t('portal.common.name'), dataIndex: 'name' },
          { title: t('portal.tokens.prefix'), dataIndex: 'prefix', render: (p) => <Typography.Text code>{p}…</Typography.Text> },
          { title: t('portal.common.role'), dataIndex: 'role', render: (r) => <Tag>{r}</Tag> },
          { title: t('portal.common.project'), key: 'project', render: (_, x) => projectName(x.project_id) },
          { title: t('portal.tokens.expiresAt'), dataIndex: 'expires_at', render: when },
          { title: t('portal.tokens.lastUsed'), dataIndex: 'last_used_at', render: when },
          {
            title: t('portal.common.state'),
            key: 'state',
            render: (_, x) =>
              x.revoked_at ? (
                <Badge status="error" text={t('portal.tokens.revoked', { at: when(x.revoked_at) })} />
              ) : (
                <Badge status="success" text={t('portal.tokens.active')} />
              ),
          },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, x) =>
              x.revoked_at ? null : (
                <Popconfirm
                  title={t('portal.tokens.revokeConfirm', { name: x.name })}
                  okText={t('portal.tokens.revoke')}
                  cancelText={t('portal.common.cancel')}
                  onConfirm={() => revoke.mutate(x)}
                >
                  <Button size="small" danger loading={revoke.isPending && revoke.variables?.id === x.id}>
                    {t('portal.tokens.revoke')}
                  </Button>
                </Popconfirm>
              ),
          },
        ]}
      />
      <Modal
        open={creating}
        title={t('portal.tokens.createTitle')}
        okText={t('portal.common.create')}
        okButtonProps={{ loading: create.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setCreating(false)}
        destroyOnHidden
      >
        {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
        <Form<CreateValues> form={form} layout="vertical" onFinish={finish} initialValues={{ role: 'developer', project_id: '', expires_in_days: 90 }}>
          <Form.Item name="name" label={t('portal.common.name')} rules={[{ required: true }]}>
            <Input placeholder="ci-deploy" />
          </Form.Item>
          <Form.Item name="role" label={t('portal.common.role')}>
            <Select options={(['viewer', 'developer', 'operator', 'tenant-admin'] as const).map((r) => ({ value: r, label: r }))} />
          </Form.Item>
          <Form.Item name="project_id" label={t('portal.common.project')}>
            <Select
              options={[
                { value: '', label: t('portal.common.anyProject') },
                ...(projects.data ?? []).map((p) => ({ value: p.id, label: p.name })),
              ]}
            />
          </Form.Item>
          <Form.Item name="expires_in_days" label={t('portal.tokens.expiresInDays')}>
            <InputNumber min={1} max={365} precision={0} />
          </Form.Item>
        </Form>
      </Modal>
      {/* Unmounted, not hidden, once closed: the secret leaves the page at once. */}
      {secret && (
        <Modal
          open
          title={t('portal.tokens.secretTitle', { name: secret.name })}
          closable={false}
          maskClosable={false}
          keyboard={false}
          // The secret is forgotten with the dialog: it cannot be shown again.
          onOk={() => {
            setSecret(undefined);
            create.reset();
          }}
          okText={t('portal.tokens.done')}
          cancelButtonProps={{ style: { display: 'none' } }}
          destroyOnHidden
        >
          <Alert type="warning" showIcon message={t('portal.tokens.secretOnce')} style={{ marginBottom: 12 }} />
          <Typography.Text strong>{t('portal.tokens.secretLabel')}</Typography.Text>
          <Typography.Paragraph
            copyable={{ text: secret.secret, tooltips: [t('portal.tokens.copy'), t('portal.tokens.copied')] }}
            style={{ wordBreak: 'break-all' }}
          >
            <code data-testid="token-secret">{secret.secret}</code>
          </Typography.Paragraph>
        </Modal>
      )}
    </>
  );
}
