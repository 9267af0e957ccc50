// The template catalog: the platform's base services (templates without a
// tenant, written by platform administrators) and the tenant's own; create
// a template, import a Helm chart, open one to edit its versions or deploy it.
import { useState } from 'react';
import { Alert, App, Button, Checkbox, Empty, Form, Input, Modal, Space, Tag, Typography, Upload } from 'antd';
import type { UploadFile } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type Template = Answer<'/api/v1/templates', 'get'>['items'][number];

function CreateTemplate({ open, onClose, tenantId }: { open: boolean; onClose: () => void; tenantId: string }) {
  const { t } = useTranslation();
  const { whoami } = useSession();
  const client = useQueryClient();
  const navigate = useNavigate();
  const [form] = Form.useForm<{ name: string; description?: string; platform?: boolean }>();
  const [failure, setFailure] = useState<string>();
  const create = useMutation({
    mutationFn: async (v: { name: string; description?: string; platform?: boolean }) =>
      unwrap(
        await api.POST('/api/v1/templates', {
          body: { name: v.name, description: v.description, tenant_id: v.platform ? undefined : tenantId },
        }),
      ),
  });
  async function finish(v: { name: string; description?: string; platform?: boolean }) {
    setFailure(undefined);
    try {
      const created = await create.mutateAsync(v);
      void client.invalidateQueries({ queryKey: ['templates'] });
      onClose();
      navigate(`/templates/${created.id}?new=1`);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['name', 'description', 'tenant_id']));
    }
  }
  return (
    <Modal
      open={open}
      title={t('portal.templates.createTitle')}
      okText={t('portal.common.create')}
      okButtonProps={{ loading: create.isPending }}
      onOk={() => form.submit()}
      onCancel={onClose}
      destroyOnHidden
    >
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
      <Form form={form} layout="vertical" onFinish={finish}>
        <Form.Item name="name" label={t('portal.common.name')} rules={[{ required: true }]}>
          <Input placeholder="web-shop" />
        </Form.Item>
        <Form.Item name="description" label={t('portal.templates.description')}>
          <Input.TextArea rows={2} />
        </Form.Item>
        {whoami?.platform_admin && (
          <Form.Item name="platform" valuePropName="checked">
            <Checkbox>{t('portal.templates.platform')}</Checkbox>
          </Form.Item>
        )}
      </Form>
    </Modal>
  );
}

function ImportChart({ open, onClose, tenantId }: { open: boolean; onClose: () => void; tenantId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const navigate = useNavigate();
  const [files, setFiles] = useState<UploadFile[]>([]);
  const [failure, setFailure] = useState<string>();
  const upload = useMutation({
    mutationFn: async (archive: Blob) =>
      unwrap(
        await api.POST('/api/v1/tenants/{id}/templates/import', {
          params: { path: { id: tenantId } },
          // The archive goes as it is, not as JSON.
          body: archive as unknown as string,
          bodySerializer: (b: unknown) => b as Blob,
          headers: { 'Content-Type': 'application/gzip' },
        }),
      ),
  });
  async function send() {
    setFailure(undefined);
    const archive = files[0]?.originFileObj;
    if (!archive) {
      setFailure(t('portal.templates.chooseFile'));
      return;
    }
    try {
      const imported = await upload.mutateAsync(archive);
      void message.success(
        t('portal.templates.imported', { name: imported.template.name, version: imported.version.version }),
      );
      void client.invalidateQueries({ queryKey: ['templates'] });
      setFiles([]);
      onClose();
      navigate(`/templates/${imported.template.id}`);
    } catch (e) {
      // A chart that does not render names the file in `field`.
      const problem = toProblem(e);
      setFailure(problem.field ? `${problem.field}: ${problem.detail}` : problem.detail);
    }
  }
  return (
    <Modal
      open={open}
      title={t('portal.templates.importTitle')}
      okText={t('portal.templates.import')}
      okButtonProps={{ loading: upload.isPending }}
      onOk={() => void send()}
      onCancel={onClose}
      destroyOnHidden
    >
      <Typography.Paragraph>{t('portal.templates.importHelp')}</Typography.Paragraph>
      {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 12 }} />}
      <Upload
        accept=".tgz,.tar.gz,application/gzip"
        maxCount={1}
        fileList={files}
        beforeUpload={() => false}
        onChange={({ fileList }) => setFiles(fileList.slice(-1))}
      >
        <Button>{t('portal.templates.chooseFile')}</Button>
      </Upload>
    </Modal>
  );
}

export default function Templates() {
  const { t } = useTranslation();
  const { tenantId } = useSession();
  const pages = useCursorPages(tenantId);
  const [creating, setCreating] = useState(false);
  const [importing, setImporting] = useState(false);
  const list = useQuery({
    queryKey: ['templates', tenantId, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/templates', {
          params: { query: { limit: 50, cursor: pages.cursor, tenant_id: tenantId } },
        }),
      ),
  });
  return (
    <>
      <Space style={{ width: '100%', justifyContent: 'space-between' }} wrap>
        <Typography.Title level={2}>{t('portal.templates.title')}</Typography.Title>
        {tenantId && (
          <Space>
            <Button onClick={() => setImporting(true)}>{t('portal.templates.import')}</Button>
            <Button type="primary" onClick={() => setCreating(true)}>
              {t('portal.templates.create')}
            </Button>
          </Space>
        )}
      </Space>
      {!tenantId && <Empty description={t('portal.common.noTenant')} style={{ marginBottom: 16 }} />}
      <CursorTable<Template>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.templates.empty')}
        columns={[
          {
            title: t('portal.common.name'),
            dataIndex: 'name',
            render: (name, x) => <Link to={`/templates/${x.id}`}>{name}</Link>,
          },
          {
            title: t('portal.templates.kind'),
            key: 'kind',
            render: (_, x) =>
              x.tenant_id ? <Tag>{t('portal.templates.tenant')}</Tag> : <Tag>{t('portal.templates.platform')}</Tag>,
          },
          { title: t('portal.templates.description'), dataIndex: 'description', render: (d) => d || '—' },
          {
            title: t('portal.common.createdAt'),
            dataIndex: 'created_at',
            render: (at) => (at ? new Date(at).toLocaleString() : '—'),
          },
          {
            title: t('portal.common.actions'),
            key: 'actions',
            render: (_, x) => <Link to={`/deploy?template=${x.id}`}>{t('portal.templates.deploy')}</Link>,
          },
        ]}
      />
      {tenantId && (
        <>
          <CreateTemplate open={creating} onClose={() => setCreating(false)} tenantId={tenantId} />
          <ImportChart open={importing} onClose={() => setImporting(false)} tenantId={tenantId} />
        </>
      )}
    </>
  );
}
