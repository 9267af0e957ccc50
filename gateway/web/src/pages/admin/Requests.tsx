import { useState } from 'react';
import { App, Button, Form, Input, Modal, Space, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';

type ResourceRequest = Answer<'/api/v1/requests', 'get'>['items'][number];

/** The queue of submitted resource requests, approved or rejected by a platform administrator. */
export default function Requests() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const pages = useCursorPages();
  const [rejecting, setRejecting] = useState<ResourceRequest>();
  const [form] = Form.useForm<{ reason: string }>();
  const [rejectFailure, setRejectFailure] = useState<string>();
  const list = useQuery({
    queryKey: ['requests', 'submitted', pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/requests', {
          params: { query: { limit: 50, cursor: pages.cursor, state: 'submitted' } },
        }),
      ),
  });
  const step = useMutation({
    mutationFn: async ({ id, step, reason }: { id: string; step: 'approve' | 'reject'; reason?: string }) =>
      unwrap(
        await api.POST('/api/v1/requests/{id}/{step}', {
          params: { path: { id, step } },
          body: { reason: reason ?? '' },
        }),
      ),
    onSuccess: (r, { step }) => {
      void message.success(t(step === 'approve' ? 'requests.approved' : 'requests.rejected', { project: r.form.project_name }));
      void client.invalidateQueries({ queryKey: ['requests'] });
    },
  });

  async function approve(r: ResourceRequest) {
    try {
      await step.mutateAsync({ id: r.id, step: 'approve' });
    } catch (e) {
      void message.error(toProblem(e).detail);
    }
  }

  async function reject(values: { reason: string }) {
    if (!rejecting) return;
    setRejectFailure(undefined);
    try {
      await step.mutateAsync({ id: rejecting.id, step: 'reject', reason: values.reason });
      setRejecting(undefined);
      form.resetFields();
    } catch (e) {
      setRejectFailure(showProblemOnForm(form, e, ['reason']));
    }
  }

  return (
    <>
      <Typography.Title level={2}>{t('requests.title')}</Typography.Title>
      <CursorTable<ResourceRequest>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('requests.empty')}
        columns={[
          { title: t('requests.project'), key: 'project', render: (_, r) => r.form.project_name },
          { title: t('requests.applicant'), key: 'applicant', render: (_, r) => r.form.applicant },
          { title: t('requests.application'), key: 'application', render: (_, r) => r.form.application },
          { title: t('requests.dataCentre'), key: 'dc', render: (_, r) => r.form.data_centre },
          { title: t('requests.spec'), key: 'spec', render: (_, r) => `${r.form.spec_id} × ${r.form.count}` },
          {
            title: t('requests.dr'),
            key: 'dr',
            render: (_, r) => (r.form.dr_reserve ? t('requests.yes') : t('requests.no')),
          },
          { title: t('requests.purpose'), key: 'purpose', render: (_, r) => r.form.purpose || '—' },
          {
            title: '',
            key: 'actions',
            render: (_, r) => (
              <Space>
                <Button
                  type="primary"
                  size="small"
                  loading={step.isPending && step.variables?.id === r.id && step.variables.step === 'approve'}
                  onClick={() => void approve(r)}
                >
                  {t('requests.approve')}
                </Button>
                <Button danger size="small" onClick={() => setRejecting(r)}>
                  {t('requests.reject')}
                </Button>
              </Space>
            ),
          },
        ]}
      />
      <Modal
        open={!!rejecting}
        title={t('requests.rejectTitle', { project: rejecting?.form.project_name ?? '' })}
        okText={t('requests.reject')}
        okButtonProps={{ danger: true, loading: step.isPending }}
        onOk={() => form.submit()}
        onCancel={() => {
          setRejecting(undefined);
          setRejectFailure(undefined);
        }}
        destroyOnHidden
      >
        {rejectFailure && <Typography.Text type="danger">{rejectFailure}</Typography.Text>}
        <Form form={form} layout="vertical" onFinish={reject}>
          <Form.Item name="reason" label={t('requests.reason')} rules={[{ required: true }]}>
            <Input.TextArea rows={3} />
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
