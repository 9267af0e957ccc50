import { App, Button, Popconfirm, Tag, Timeline, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { Health } from '../../components/Health';
import { useCursorPages } from '../../components/pages';
import { formatTime } from '../../components/time';

type Failover = Answer<'/api/v1/failovers', 'get'>['items'][number];

const STATE_HEALTH: Record<string, string> = {
  'awaiting-confirmation': 'Degraded',
  pending: 'Progressing',
  fencing: 'Progressing',
  placing: 'Progressing',
  applied: 'Progressing',
  available: 'Available',
  failed: 'Failed',
};
const ENDED = ['available', 'failed'];

/**
 * How often the list is read again: every second while an operation is under
 * way, so each step shows as it is taken; every 5 s otherwise, so a failover
 * that starts (a cluster lost) appears without a reload. The gateway has no
 * event stream for failovers.
 */
export function refreshEvery(items: Pick<Failover, 'state'>[] | undefined): number {
  return items?.some((f) => !ENDED.includes(f.state)) ? 1000 : 5000;
}

/** Seconds from one timestamp to another, for the steps' timings. */
function after(from: string | null | undefined, to: string | null | undefined): string {
  if (!from || !to) return '';
  const s = (new Date(to).getTime() - new Date(from).getTime()) / 1000;
  return Number.isFinite(s) ? `+${s.toFixed(1)} s` : '';
}

/** Failovers and failbacks of every tenant's bindings, newest first, with their timed steps. */
export default function Failovers() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const pages = useCursorPages();
  const list = useQuery({
    queryKey: ['failovers', pages.cursor],
    refetchInterval: (q) => refreshEvery(q.state.data?.items),
    queryFn: async () =>
      unwrap(await api.GET('/api/v1/failovers', { params: { query: { limit: 50, cursor: pages.cursor || undefined } } })),
  });
  const confirm = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.POST('/api/v1/failovers/{id}/confirm', { params: { path: { id } }, body: {} })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ['failovers'] }),
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <>
      <Typography.Title level={2}>{t('failovers.title')}</Typography.Title>
      <CursorTable<Failover>
        rowKey="id"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('failovers.empty')}
        expandable={{
          expandedRowRender: (f) => (
            <Timeline
              items={[
                ...(f.fault_detected_at ? [{ children: `${t('failovers.faultDetected')} · ${formatTime(f.fault_detected_at)}` }] : []),
                ...f.steps.map((s) => ({
                  color: s.at ? 'green' : 'gray',
                  children: `${s.name} · ${formatTime(s.at)} ${after(f.fault_detected_at ?? f.created_at, s.at)}`,
                })),
              ]}
            />
          ),
        }}
        columns={[
          {
            title: t('failovers.application'),
            key: 'application',
            render: (_, f) => (
              <>
                {f.application || f.binding_name}
                {f.application && f.binding_name !== f.application && (
                  <Typography.Text type="secondary"> · {f.binding_name}</Typography.Text>
                )}
              </>
            ),
          },
          { title: t('failovers.kind'), dataIndex: 'kind', render: (k: string) => <Tag>{k}</Tag> },
          { title: t('failovers.trigger'), dataIndex: 'trigger' },
          { title: t('failovers.from'), dataIndex: 'from_cluster' },
          { title: t('failovers.to'), dataIndex: 'to_clusters', render: (c: string[]) => c.join(', ') || '—' },
          { title: t('failovers.state'), dataIndex: 'state', render: (s: string) => <Health value={STATE_HEALTH[s] ?? s} title={s} /> },
          { title: t('failovers.reason'), dataIndex: 'reason', render: (r: string) => r || '—' },
          { title: t('failovers.createdAt'), dataIndex: 'created_at', render: formatTime },
          {
            title: t('failovers.availableIn'),
            key: 'took',
            render: (_, f) => after(f.fault_detected_at ?? f.created_at, f.available_at) || '—',
          },
          {
            title: '',
            key: 'actions',
            render: (_, f) =>
              f.state === 'awaiting-confirmation' && (
                <Popconfirm title={t('failovers.confirmHelp')} onConfirm={() => confirm.mutate(f.id)}>
                  <Button size="small" type="primary" danger>
                    {t('failovers.confirm')}
                  </Button>
                </Popconfirm>
              ),
          },
        ]}
      />
    </>
  );
}
