import { useState } from 'react';
import { App, Button, Descriptions, Modal, Skeleton, Space, Table, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useLocation, useParams } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { ApiProblem, toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { useCursorPages } from '../../components/pages';
import { ProblemAlert } from '../../components/ProblemAlert';
import { formatTime } from '../../components/time';
import { ToneTag, type Tone } from '../../components/ToneTag';

type Tag = Answer<'/api/v1/repositories/{id}/tags', 'get'>['items'][number];
type TagState = Tag['state'];
type Scan = Answer<'/api/v1/repositories/{id}/tags/{tag}/scan', 'get'>;

/** A tag's life, one step at a time (the registry refuses skips). */
export const LIFECYCLE: TagState[] = ['built', 'pushed', 'tested', 'released', 'deprecated', 'deleted'];

/** The state a tag may move to next, if any. */
export function nextState(state: TagState): TagState | undefined {
  const at = LIFECYCLE.indexOf(state);
  return at >= 0 && at < LIFECYCLE.length - 1 ? LIFECYCLE[at + 1] : undefined;
}

const STATE_TONE: Record<string, Tone> = { released: 'good', deprecated: 'warning', deleted: 'bad', tested: 'info' };
const SEVERITY_TONE: Record<string, Tone> = { critical: 'bad', high: 'bad', medium: 'warning', low: 'info' };

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let n = bytes / 1024;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n.toFixed(1)} ${units[u]}`;
}

/** A tag's last scan: its status and worst finding; none yet is a 404. */
function ScanCell({ repository, tag, onOpen }: { repository: string; tag: string; onOpen: (s: Scan) => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const scan = useQuery({
    queryKey: ['scan', repository, tag],
    refetchInterval: (q) => (q.state.data && ['queued', 'running'].includes(q.state.data.status) ? 3000 : false),
    queryFn: async () => {
      try {
        return unwrap(await api.GET('/api/v1/repositories/{id}/tags/{tag}/scan', { params: { path: { id: repository, tag } } }));
      } catch (e) {
        if (e instanceof ApiProblem && e.status === 404) return null;
        throw e;
      }
    },
  });
  const start = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST('/api/v1/repositories/{id}/tags/{tag}/scan', { params: { path: { id: repository, tag } } })),
    onSuccess: (s) => client.setQueryData(['scan', repository, tag], s),
    onError: (e) => void message.error(toProblem(e).detail),
  });
  const s = scan.data;
  return (
    <Space>
      {scan.isPending ? (
        '…'
      ) : scan.error ? (
        <Typography.Text type="danger">{toProblem(scan.error).detail}</Typography.Text>
      ) : s ? (
        <Button size="small" type="link" onClick={() => onOpen(s)} aria-label={t('images.scanOf', { tag })}>
          {s.status === 'done'
            ? s.highest_severity
              ? t('images.worst', { severity: s.highest_severity })
              : t('images.clean')
            : s.status}
        </Button>
      ) : (
        t('images.notScanned')
      )}
      <Button size="small" loading={start.isPending} onClick={() => start.mutate()} aria-label={t('images.scanTag', { tag })}>
        {t('images.scan')}
      </Button>
    </Space>
  );
}

/** A repository's tags: lifecycle state with the next move, size, scan. */
export default function RepositoryPage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const { id = '' } = useParams();
  const location = useLocation();
  const pages = useCursorPages(id);
  const [scan, setScan] = useState<Scan>();
  const tags = useQuery({
    queryKey: ['tags', id, pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/repositories/{id}/tags', {
          params: { path: { id }, query: { limit: 20, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const move = useMutation({
    mutationFn: async ({ tag, state }: { tag: string; state: TagState }) =>
      unwrap(await api.PUT('/api/v1/repositories/{id}/tags/{tag}/state', { params: { path: { id, tag } }, body: { state } })),
    onSuccess: (tag) => {
      void message.success(t('images.moved', { tag: tag.name, state: tag.state }));
      void client.invalidateQueries({ queryKey: ['tags', id] });
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  const name = (location.state as { name?: string } | null)?.name ?? tags.data?.items[0]?.repository ?? '';
  return (
    <>
      <Typography.Title level={2}>{t('images.repositoryTitle', { name })}</Typography.Title>
      <Typography.Paragraph>
        <Link to="/images">{t('images.back')}</Link>
      </Typography.Paragraph>
      <CursorTable<Tag>
        rowKey="id"
        pages={pages}
        items={tags.data?.items}
        nextCursor={tags.data?.next_cursor}
        error={tags.error}
        onRetry={() => void tags.refetch()}
        empty={t('images.noTags')}
        columns={[
          { title: t('images.tag'), dataIndex: 'name' },
          { title: t('images.digest'), dataIndex: 'digest', render: (d: string) => <code title={d}>{d.slice(0, 19)}</code> },
          { title: t('images.state'), dataIndex: 'state', render: (s: string) => <ToneTag tone={STATE_TONE[s]}>{s}</ToneTag> },
          {
            title: t('images.move'),
            key: 'move',
            render: (_, tag) => {
              const next = nextState(tag.state);
              return next ? (
                <Button
                  size="small"
                  loading={move.isPending && move.variables?.tag === tag.name}
                  onClick={() => move.mutate({ tag: tag.name, state: next })}
                  aria-label={t('images.moveTo', { tag: tag.name, state: next })}
                >
                  {`→ ${next}`}
                </Button>
              ) : (
                '—'
              );
            },
          },
          { title: t('images.size'), dataIndex: 'size', render: size },
          { title: t('images.pushedAt'), dataIndex: 'pushed_at', render: formatTime },
          {
            title: t('images.scanStatus'),
            key: 'scan',
            render: (_, tag) => <ScanCell repository={id} tag={tag.name} onOpen={setScan} />,
          },
        ]}
      />
      <Modal open={!!scan} title={t('images.scanTitle')} footer={null} onCancel={() => setScan(undefined)} width={800}>
        {scan ? (
          <>
            <Descriptions size="small" column={2}>
              <Descriptions.Item label={t('images.scanner')}>{scan.scanner}</Descriptions.Item>
              <Descriptions.Item label={t('images.state')}>{scan.status}</Descriptions.Item>
              <Descriptions.Item label={t('images.finishedAt')}>{formatTime(scan.finished_at)}</Descriptions.Item>
              <Descriptions.Item label={t('images.message')}>{scan.message || '—'}</Descriptions.Item>
            </Descriptions>
            <Space wrap style={{ margin: '12px 0' }}>
              {Object.entries(scan.summary).map(([severity, n]) => (
                <ToneTag key={severity} tone={SEVERITY_TONE[severity]}>{`${severity}: ${n}`}</ToneTag>
              ))}
            </Space>
            {scan.status === 'failed' && <ProblemAlert error={scan.message} />}
            <Table
              size="small"
              rowKey={(v) => `${v.id}/${v.package}`}
              dataSource={scan.vulnerabilities}
              pagination={{ pageSize: 20 }}
              columns={[
                { title: 'ID', dataIndex: 'id' },
                { title: t('images.severity'), dataIndex: 'severity' },
                { title: t('images.package'), dataIndex: 'package' },
                { title: t('images.version'), dataIndex: 'version' },
                { title: t('images.fixVersion'), dataIndex: 'fix_version', render: (v: string) => v || '—' },
              ]}
            />
          </>
        ) : (
          <Skeleton />
        )}
      </Modal>
    </>
  );
}
