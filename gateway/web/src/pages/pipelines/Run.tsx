import { useState } from 'react';
import { Alert, App, Badge, Button, Card, Descriptions, Drawer, Form, Input, List, Skeleton, Space, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { showProblemOnForm } from '../../components/formProblem';
import { Health } from '../../components/Health';
import { ProblemAlert } from '../../components/ProblemAlert';
import { formatTime } from '../../components/time';
import { RUN_HEALTH } from '../images/Images';
import { useStepLog } from './stepLog';
import { ToneTag } from '../../components/ToneTag';

type Run = Answer<'/api/v1/runs/{id}', 'get'>;
type Stage = Run['stages'][number];
type Step = Stage['steps'][number];

const STEP_BADGE: Record<string, 'success' | 'processing' | 'warning' | 'error' | 'default'> = {
  succeeded: 'success',
  running: 'processing',
  queued: 'processing',
  waiting: 'warning',
  failed: 'error',
  cancelled: 'default',
  skipped: 'default',
  pending: 'default',
};

function StepLog({ step }: { step: Step }) {
  const { t } = useTranslation();
  const log = useStepLog(step.id);
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Space wrap>
        <Badge status={STEP_BADGE[log.state || step.state] ?? 'default'} text={log.state || step.state} />
        <Tag>{log.via === 'events' ? t('pipelines.live') : t('pipelines.polling')}</Tag>
        {log.truncated && <ToneTag tone="warning">{t('pipelines.truncated')}</ToneTag>}
      </Space>
      {log.error && <Alert type="warning" showIcon message={log.error} />}
      <pre
        role="log"
        aria-label={t('pipelines.log')}
        tabIndex={0}
        style={{ background: '#141414', color: '#f0f0f0', padding: 12, minHeight: 200, maxHeight: 520, overflow: 'auto', fontSize: 12 }}
      >
        {log.text || (log.live ? t('pipelines.waitingForOutput') : t('pipelines.noOutput'))}
      </pre>
    </Space>
  );
}

/** Approve or reject an approval step, with a comment. */
function Approval({ step, onDecided }: { step: Step; onDecided: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const [form] = Form.useForm<{ comment: string }>();
  const [failure, setFailure] = useState<string>();
  const decide = useMutation({
    mutationFn: async ({ approve, comment }: { approve: boolean; comment: string }) =>
      unwrap(await api.POST('/api/v1/steps/{id}/approval', { params: { path: { id: step.id } }, body: { approve, comment } })),
  });
  async function submit(approve: boolean) {
    setFailure(undefined);
    try {
      await decide.mutateAsync({ approve, comment: form.getFieldValue('comment') ?? '' });
      void message.success(approve ? t('pipelines.approved') : t('pipelines.rejected'));
      onDecided();
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['comment', 'approve']));
    }
  }
  return (
    <Card size="small" title={t('pipelines.approval')}>
      {step.approvals.length > 0 && (
        <List
          size="small"
          dataSource={step.approvals}
          renderItem={(d) => (
            <List.Item>{`${d.decision} · ${d.approver}${d.comment ? `: ${d.comment}` : ''} · ${formatTime(d.decided_at)}`}</List.Item>
          )}
        />
      )}
      {step.state === 'waiting' && (
        <>
          {failure && <Alert type="error" showIcon message={failure} style={{ marginBottom: 12 }} />}
          <Form form={form} layout="vertical">
            <Form.Item name="comment" label={t('pipelines.comment')}>
              <Input.TextArea rows={2} />
            </Form.Item>
            <Space>
              <Button type="primary" loading={decide.isPending && decide.variables?.approve} onClick={() => void submit(true)}>
                {t('pipelines.approve')}
              </Button>
              <Button danger loading={decide.isPending && !decide.variables?.approve} onClick={() => void submit(false)}>
                {t('pipelines.reject')}
              </Button>
            </Space>
          </Form>
        </>
      )}
    </Card>
  );
}

/** The run's stages left to right, each with its steps; a step opens its log. */
function StageGraph({ run, onOpen }: { run: Run; onOpen: (s: Step) => void }) {
  const { t } = useTranslation();
  return (
    <div role="list" aria-label={t('pipelines.stages')} style={{ display: 'flex', gap: 16, overflowX: 'auto', paddingBottom: 8 }}>
      {run.stages.map((stage, i) => (
        <div role="listitem" key={stage.id} style={{ display: 'flex', alignItems: 'center', gap: 16 }}>
          {i > 0 && (
            <span aria-hidden style={{ fontSize: 20, color: 'rgba(0,0,0,0.45)' }}>
              →
            </span>
          )}
          <Card size="small" title={<Badge status={STEP_BADGE[stage.state] ?? 'default'} text={stage.name} />} style={{ minWidth: 220 }}>
            <Space direction="vertical" style={{ width: '100%' }}>
              {stage.steps.map((step) => (
                <Button key={step.id} block style={{ textAlign: 'left' }} onClick={() => onOpen(step)}>
                  <Badge status={STEP_BADGE[step.state] ?? 'default'} text={`${step.name} · ${step.state}`} />
                </Button>
              ))}
            </Space>
          </Card>
        </div>
      ))}
    </div>
  );
}

/** A pipeline run: its stages and steps, live step logs, and approvals. */
export default function RunPage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { id = '' } = useParams();
  const [open, setOpen] = useState<string>();
  const run = useQuery({
    queryKey: ['run', id],
    refetchInterval: (q) => (q.state.data && ['queued', 'running'].includes(q.state.data.state) ? 2000 : false),
    queryFn: async () => unwrap(await api.GET('/api/v1/runs/{id}', { params: { path: { id } } })),
  });
  const cancel = useMutation({
    mutationFn: async () => unwrap(await api.POST('/api/v1/runs/{id}/cancel', { params: { path: { id } } })),
    onSuccess: (r) => client.setQueryData(['run', id], r),
    onError: (e) => void message.error(toProblem(e).detail),
  });
  if (run.error) return <ProblemAlert error={run.error} onRetry={() => void run.refetch()} />;
  if (!run.data) return <Skeleton active />;
  const r = run.data;
  const step = r.stages.flatMap((s) => s.steps).find((s) => s.id === open);
  const waiting = r.stages.flatMap((s) => s.steps).filter((s) => s.kind === 'approval' && s.state === 'waiting');
  return (
    <>
      <Typography.Title level={2}>{t('pipelines.runTitle', { number: r.number, branch: r.branch })}</Typography.Title>
      <Typography.Paragraph>
        <Link to="/pipelines">{t('pipelines.back')}</Link>
      </Typography.Paragraph>
      <Descriptions size="small" column={{ xs: 1, md: 3 }} style={{ marginBottom: 16 }}>
        <Descriptions.Item label={t('pipelines.state')}>
          <Health value={RUN_HEALTH[r.state] ?? r.state} title={r.state} />
        </Descriptions.Item>
        <Descriptions.Item label={t('pipelines.ref')}>{r.ref}</Descriptions.Item>
        <Descriptions.Item label={t('pipelines.commit')}>
          <code>{r.commit.slice(0, 12)}</code>
        </Descriptions.Item>
        <Descriptions.Item label={t('pipelines.version')}>{r.version || '—'}</Descriptions.Item>
        <Descriptions.Item label={t('pipelines.triggeredBy')}>{`${r.triggered_by} (${r.trigger})`}</Descriptions.Item>
        <Descriptions.Item label={t('pipelines.startedAt')}>{formatTime(r.started_at)}</Descriptions.Item>
      </Descriptions>
      {r.message && <Alert type={r.state === 'failed' ? 'error' : 'info'} showIcon message={r.message} style={{ marginBottom: 16 }} />}
      {waiting.length > 0 && (
        <Alert
          type="warning"
          showIcon
          style={{ marginBottom: 16 }}
          message={t('pipelines.awaitingApproval', { steps: waiting.map((s) => s.name).join(', ') })}
          action={
            <Button size="small" onClick={() => setOpen(waiting[0].id)}>
              {t('pipelines.decide')}
            </Button>
          }
        />
      )}
      {r.stages.length === 0 ? (
        <Alert type="info" message={t('pipelines.noStages')} />
      ) : (
        <StageGraph run={r} onOpen={(s) => setOpen(s.id)} />
      )}
      {['queued', 'running'].includes(r.state) && (
        <Button danger style={{ marginTop: 16 }} loading={cancel.isPending} onClick={() => cancel.mutate()}>
          {t('pipelines.cancel')}
        </Button>
      )}
      <Drawer open={!!step} width={760} title={step ? `${step.stage} / ${step.name}` : ''} onClose={() => setOpen(undefined)} destroyOnHidden>
        {step && (
          <Space direction="vertical" style={{ width: '100%' }} size="middle">
            <Descriptions size="small" column={2}>
              <Descriptions.Item label={t('pipelines.kind')}>{step.kind}</Descriptions.Item>
              <Descriptions.Item label={t('pipelines.attempt')}>{step.attempt}</Descriptions.Item>
              <Descriptions.Item label={t('pipelines.image')}>{step.image || '—'}</Descriptions.Item>
              <Descriptions.Item label={t('pipelines.exitCode')}>{step.exit_code ?? '—'}</Descriptions.Item>
              {step.tests_total != null && (
                <Descriptions.Item label={t('pipelines.tests')}>
                  {t('pipelines.testsValue', { total: step.tests_total, failed: step.tests_failed ?? 0, skipped: step.tests_skipped ?? 0 })}
                </Descriptions.Item>
              )}
            </Descriptions>
            {step.message && <Alert type={step.state === 'failed' ? 'error' : 'info'} message={step.message} />}
            {step.kind === 'approval' ? (
              <Approval step={step} onDecided={() => void run.refetch()} />
            ) : (
              <StepLog step={step} />
            )}
          </Space>
        )}
      </Drawer>
    </>
  );
}
