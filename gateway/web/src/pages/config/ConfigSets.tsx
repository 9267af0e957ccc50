import { useState } from 'react';
import { App, Button, Checkbox, Empty, Form, Input, Modal, Space, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';

type ConfigSet = Answer<'/api/v1/config-sets', 'get'>['items'][number];

interface NewSet {
  application: string;
  environment?: string;
  cluster?: string;
  shared?: boolean;
}

/** The level a set is: base, an environment, or a cluster of one. */
export function setLevel(s: Pick<ConfigSet, 'environment' | 'cluster'>, base: string): string {
  if (!s.environment) return base;
  return s.cluster ? `${s.environment} / ${s.cluster}` : s.environment;
}

/** The tenant's config sets: base, environment and cluster levels per application. */
export default function ConfigSets() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const navigate = useNavigate();
  const client = useQueryClient();
  const { tenantId } = useSession();
  const [application, setApplication] = useState('');
  const pages = useCursorPages(`${tenantId}/${application}`);
  const [creating, setCreating] = useState(false);
  const [failure, setFailure] = useState<string>();
  const [form] = Form.useForm<NewSet>();
  const list = useQuery({
    queryKey: ['config-sets', tenantId, application, pages.cursor],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets', {
          params: {
            query: { tenant_id: tenantId!, application: application || undefined, limit: 50, cursor: pages.cursor || undefined },
          },
        }),
      ),
  });
  const create = useMutation({
    mutationFn: async (v: NewSet) =>
      unwrap(
        await api.POST('/api/v1/config-sets', {
          body: {
            tenant_id: tenantId!,
            application: v.application.trim(),
            environment: v.environment?.trim() ?? '',
            cluster: v.cluster?.trim() ?? '',
            shared: !!v.shared,
          },
        }),
      ),
  });

  async function submit(v: NewSet) {
    setFailure(undefined);
    try {
      const set = await create.mutateAsync(v);
      void message.success(t('configs.created', { name: set.application }));
      void client.invalidateQueries({ queryKey: ['config-sets'] });
      setCreating(false);
      form.resetFields();
      navigate(`/config/${set.id}`);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['application', 'environment', 'cluster', 'shared']));
    }
  }

  if (!tenantId) {
    return (
      <>
        <Typography.Title level={2}>{t('configs.title')}</Typography.Title>
        <Empty description={t('dashboard.noTenant')} />
      </>
    );
  }
  return (
    <>
      <Typography.Title level={2}>{t('configs.title')}</Typography.Title>
      <Space style={{ marginBottom: 16 }} wrap>
        <Input.Search
          aria-label={t('configs.filterApplication')}
          placeholder={t('configs.filterApplication')}
          allowClear
          onSearch={(v) => setApplication(v.trim())}
          style={{ width: 260 }}
        />
        <Button type="primary" onClick={() => setCreating(true)}>
          {t('configs.new')}
        </Button>
      </Space>
      <CursorTable<ConfigSet>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('configs.empty')}
        columns={[
          {
            title: t('configs.application'),
            dataIndex: 'application',
            render: (name: string, s) => <Link to={`/config/${s.id}`}>{name}</Link>,
          },
          { title: t('configs.level'), key: 'level', render: (_, s) => setLevel(s, t('configs.base')) },
          {
            title: t('configs.shared'),
            dataIndex: 'shared',
            render: (shared: boolean) => (shared ? <Tag>{t('configs.shared')}</Tag> : '—'),
          },
          {
            title: t('configs.latestRelease'),
            dataIndex: 'latest_release',
            render: (n: number) => (n > 0 ? `#${n}` : t('configs.unreleased')),
          },
          { title: t('configs.createdAt'), dataIndex: 'created_at', render: formatTime },
        ]}
      />
      <Modal
        open={creating}
        title={t('configs.new')}
        okText={t('configs.create')}
        okButtonProps={{ loading: create.isPending }}
        onOk={() => form.submit()}
        onCancel={() => {
          setCreating(false);
          setFailure(undefined);
        }}
        destroyOnHidden
      >
        {failure && <Typography.Text type="danger">{failure}</Typography.Text>}
        <Form form={form} layout="vertical" onFinish={submit} initialValues={{ shared: false }}>
          <Form.Item name="application" label={t('configs.application')} rules={[{ required: true, whitespace: true }]}>
            <Input autoFocus />
          </Form.Item>
          <Form.Item name="environment" label={t('configs.environment')} extra={t('configs.environmentHelp')}>
            <Input />
          </Form.Item>
          <Form.Item name="cluster" label={t('configs.cluster')} extra={t('configs.clusterHelp')}>
            <Input />
          </Form.Item>
          <Form.Item name="shared" valuePropName="checked">
            <Checkbox>{t('configs.sharedHelp')}</Checkbox>
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
