// Who may act in the tenant: members (users by their login subject) and
// group bindings (every member of an LDAP or OIDC group gets the role),
// each for the whole tenant or one project.
import { useState } from 'react';
import { Alert, App, Button, Card, Form, Input, Modal, Popconfirm, Select, Space, Tag, Typography, Empty } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type Member = Answer<'/api/v1/tenants/{id}/members', 'get'>['items'][number];
type Kind = 'user' | 'group';
const ROLES = ['viewer', 'developer', 'operator', 'tenant-admin'] as const;
type Role = (typeof ROLES)[number];

/** Where a subject comes from: `ldap:<DN or login>`, `oidc:<provider>:<name>`, `local:<name>`. */
export function subjectSource(subject: string): { source: string; provider?: string; name: string } {
  const [source, ...rest] = subject.split(':');
  if (source === 'oidc' && rest.length >= 2) return { source, provider: rest[0], name: rest.slice(1).join(':') };
  if ((source === 'ldap' || source === 'local') && rest.length >= 1) return { source, name: rest.join(':') };
  return { source: '', name: subject };
}

/** A group binding's subject from the source picked and the group's DN or name. */
export function groupSubject(source: string, group: string): string {
  return source === 'ldap' ? `ldap:${group.trim()}` : `oidc:${source.replace(/^oidc:/, '')}:${group.trim()}`;
}

function SourceTag({ subject }: { subject: string }) {
  const { t } = useTranslation();
  const s = subjectSource(subject);
  if (s.source === 'oidc') return <Tag>{t('portal.members.oidc', { name: s.provider })}</Tag>;
  if (s.source === 'ldap') return <Tag>{t('portal.members.ldap')}</Tag>;
  if (s.source === 'local') return <Tag>{t('portal.members.local')}</Tag>;
  return null;
}

interface AddValues {
  subject?: string;
  source?: string;
  group?: string;
  role: Role;
  project_id?: string;
}

function MemberList({ tenantId, kind }: { tenantId: string; kind: Kind }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const pages = useCursorPages(tenantId);
  const [adding, setAdding] = useState(false);
  const [failure, setFailure] = useState<string>();
  const [form] = Form.useForm<AddValues>();
  const list = useQuery({
    queryKey: ['members', tenantId, kind, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/members', {
          params: { path: { id: tenantId }, query: { limit: 50, cursor: pages.cursor, kind } },
        }),
      ),
  });
  const projects = useQuery({
    queryKey: ['projects', tenantId],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/projects', { params: { path: { id: tenantId }, query: { limit: 500 } } }),
      ).items,
  });
  const providers = useQuery({
    queryKey: ['oidc-providers'],
    enabled: kind === 'group',
    queryFn: async () => unwrap(await api.GET('/api/v1/login/oidc')),
  });
  const add = useMutation({
    mutationFn: async (v: AddValues) =>
      unwrap(
        await api.POST('/api/v1/tenants/{id}/members', {
          params: { path: { id: tenantId } },
          body: {
            kind,
            subject: kind === 'group' ? groupSubject(v.source ?? 'ldap', v.group ?? '') : (v.subject ?? '').trim(),
            role: v.role,
            project_id: v.project_id || undefined,
          },
        }),
      ),
  });
  const remove = useMutation({
    mutationFn: async (m: Member) => {
      unwrap(await api.DELETE('/api/v1/members/{id}', { params: { path: { id: m.id } } }));
      return m;
    },
    onSuccess: (m) => {
      void message.success(t('portal.common.removed', { name: m.subject }));
      void client.invalidateQueries({ queryKey: ['members', tenantId] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  async function finish(v: AddValues) {
    setFailure(undefined);
    try {
      const m = await add.mutateAsync(v);
      void message.success(t('portal.common.created', { name: m.subject }));
      void client.invalidateQueries({ queryKey: ['members', tenantId] });
      setAdding(false);
    } catch (e) {
      // A group's subject is made of two fields: its problem goes on the group's.
      const placed = showProblemOnForm(form, e, ['role', 'project_id', kind === 'user' ? 'subject' : 'group']);
      const problem = toProblem(e);
      if (placed && kind === 'group' && problem.field === 'subject') {
        form.setFields([{ name: 'group', errors: [problem.detail] }]);
      } else setFailure(placed);
    }
  }
  const projectName = (id?: string) => (id ? (projects.data?.find((p) => p.id === id)?.name ?? id.slice(0, 8)) : t('portal.common.anyProject'));
  return (
    <Card
      title={kind === 'user' ? t('portal.members.users') : t('portal.members.groups')}
      extra={
        <Button type="primary" onClick={() => setAdding(true)}>
          {kind === 'user' ? t('portal.members.add') : t('portal.members.bind')}
        </Button>
      }
    >
      <CursorTable<Member>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={kind === 'user' ? t('portal.members.emptyUsers') : t('portal.members.emptyGroups')}
        columns={[
          {
            title: kind === 'user' ? t('portal.members.subject') : t('portal.members.group'),
            key: 'subject',
            render: (_, m) => subjectSource(m.subject).name,
          },
          { title: t('portal.members.source'), key: 'source', render: (_, m) => <SourceTag subject={m.subject} /> },
          { title: t('portal.common.role'), dataIndex: 'role', render: (r) => <Tag>{r}</Tag> },
          { title: t('portal.members.scope'), key: 'scope', render: (_, m) => projectName(m.project_id) },
          { title: t('portal.common.createdBy'), dataIndex: 'created_by' },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, m) => (
              <Popconfirm
                title={t('portal.members.removeConfirm', { subject: m.subject })}
                okText={t('portal.common.remove')}
                cancelText={t('portal.common.cancel')}
                onConfirm={() => remove.mutate(m)}
              >
                <Button size="small" danger loading={remove.isPending && remove.variables?.id === m.id}>
                  {t('portal.common.remove')}
                </Button>
              </Popconfirm>
            ),
          },
        ]}
      />
      <Modal
        open={adding}
        title={kind === 'user' ? t('portal.members.add') : t('portal.members.bind')}
        okText={t('portal.common.create')}
        okButtonProps={{ loading: add.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setAdding(false)}
        destroyOnHidden
      >
        {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
        <Form<AddValues> form={form} layout="vertical" onFinish={finish} initialValues={{ role: 'developer', source: 'ldap', project_id: '' }}>
          {kind === 'user' ? (
            <Form.Item name="subject" label={t('portal.members.subject')} extra={t('portal.members.subjectHelp')} rules={[{ required: true }]}>
              <Input placeholder="ldap:j.doe" />
            </Form.Item>
          ) : (
            <>
              <Form.Item name="source" label={t('portal.members.source')}>
                <Select
                  options={[
                    { value: 'ldap', label: t('portal.members.ldap') },
                    ...(providers.data ?? []).map((p) => ({
                      value: `oidc:${p.name}`,
                      label: t('portal.members.oidc', { name: p.display_name || p.name }),
                    })),
                  ]}
                />
              </Form.Item>
              <Form.Item name="group" label={t('portal.members.groupDn')} rules={[{ required: true }]}>
                <Input placeholder="cn=ops,ou=groups,dc=corp,dc=example" />
              </Form.Item>
            </>
          )}
          <Form.Item name="role" label={t('portal.common.role')}>
            <Select options={ROLES.map((r) => ({ value: r, label: r }))} />
          </Form.Item>
          <Form.Item name="project_id" label={t('portal.members.scope')}>
            <Select
              options={[
                { value: '', label: t('portal.common.anyProject') },
                ...(projects.data ?? []).map((p) => ({ value: p.id, label: p.name })),
              ]}
            />
          </Form.Item>
        </Form>
      </Modal>
    </Card>
  );
}

export default function Members() {
  const { t } = useTranslation();
  const { tenantId } = useSession();
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Typography.Title level={2}>{t('portal.members.title')}</Typography.Title>
      {!tenantId ? (
        <Empty description={t('portal.common.noTenant')} />
      ) : (
        <>
          <MemberList tenantId={tenantId} kind="user" />
          <MemberList tenantId={tenantId} kind="group" />
        </>
      )}
    </Space>
  );
}
