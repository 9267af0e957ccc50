import { useMemo, useState } from 'react';
import {
  Alert,
  App,
  Button,
  Card,
  Checkbox,
  Descriptions,
  Empty,
  Form,
  Input,
  Modal,
  Popconfirm,
  Select,
  Skeleton,
  Space,
  Table,
  Tabs,
  Tag,
  Typography,
} from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { api, unwrap, type Answer } from '../../api/client';
import { toProblem } from '../../api/problem';
import { CursorTable } from '../../components/CursorTable';
import { DiffView } from '../../components/DiffView';
import { itemChanges } from '../../components/diff';
import { showProblemOnForm } from '../../components/formProblem';
import { useCursorPages } from '../../components/pages';
import { ProblemAlert } from '../../components/ProblemAlert';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';
import { setLevel } from './ConfigSets';
import { ToneTag } from '../../components/ToneTag';

type ConfigSet = Answer<'/api/v1/config-sets/{id}', 'get'>;
type Draft = Answer<'/api/v1/config-sets/{id}/draft', 'get'>;
type DraftItem = Draft['items'][number];
type Release = Answer<'/api/v1/config-sets/{id}/releases', 'get'>['items'][number];
type GrayRule = Answer<'/api/v1/config-sets/{id}/gray-releases', 'get'>['items'][number];
type Instance = Answer<'/api/v1/config-sets/{id}/instances', 'get'>['items'][number];
type Entry = Answer<'/api/v1/tenants/{id}/effective-config', 'get'>['entries'][number];

const FORMATS = ['properties', 'yaml', 'json', 'xml', 'text'] as const;
type Format = (typeof FORMATS)[number];

interface ItemForm {
  name: string;
  format: Format;
  secret: boolean;
  content: string;
}

/** Targets typed as `cluster` or `cluster/partition`, comma separated. */
export function parseTargets(text: string | undefined): { cluster: string; partition: string }[] {
  return (text ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => {
      const [cluster, partition = ''] = t.split('/', 2).map((x) => x.trim());
      return { cluster, partition };
    });
}

function useInvalidateSet(id: string) {
  const client = useQueryClient();
  return () => {
    void client.invalidateQueries({ queryKey: ['config-set', id] });
    void client.invalidateQueries({ queryKey: ['config-sets'] });
  };
}

/** The draft's items, their edits, the diff against the last release, and publishing. */
function DraftTab({ set }: { set: ConfigSet }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const client = useQueryClient();
  const invalidate = useInvalidateSet(set.id);
  const [editing, setEditing] = useState<{ item?: DraftItem } | undefined>();
  const [publishing, setPublishing] = useState<'full' | 'gray' | undefined>();
  const [itemFailure, setItemFailure] = useState<string>();
  const [publishFailure, setPublishFailure] = useState<string>();
  const [itemForm] = Form.useForm<ItemForm>();
  const [publishForm] = Form.useForm<{ message: string; selector?: string; targets?: string }>();
  const draft = useQuery({
    queryKey: ['config-set', set.id, 'draft'],
    queryFn: async () => unwrap(await api.GET('/api/v1/config-sets/{id}/draft', { params: { path: { id: set.id } } })),
  });
  const last = useQuery({
    queryKey: ['config-set', set.id, 'release', set.latest_release],
    enabled: set.latest_release > 0,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets/{id}/releases/{number}', {
          params: { path: { id: set.id, number: set.latest_release } },
        }),
      ),
  });
  const changes = useMemo(
    () => itemChanges(last.data?.items ?? [], draft.data?.items ?? []),
    [last.data, draft.data],
  );
  const putItem = useMutation({
    mutationFn: async (v: ItemForm) =>
      unwrap(
        await api.PUT('/api/v1/config-sets/{id}/draft/items/{name}', {
          params: { path: { id: set.id, name: v.name.trim() } },
          body: { version: draft.data!.version, content: v.content ?? '', format: v.format, secret: !!v.secret },
        }),
      ),
    onSuccess: (d) => client.setQueryData(['config-set', set.id, 'draft'], d),
  });
  const deleteItem = useMutation({
    mutationFn: async (name: string) =>
      unwrap(
        await api.DELETE('/api/v1/config-sets/{id}/draft/items/{name}', {
          params: { path: { id: set.id, name }, query: { version: String(draft.data!.version) } },
        }),
      ),
    onSuccess: (d) => client.setQueryData(['config-set', set.id, 'draft'], d),
  });
  const publish = useMutation({
    mutationFn: async (v: { message: string; selector?: string; targets?: string }) => {
      const version = draft.data!.version;
      if (publishing === 'gray') {
        return unwrap(
          await api.POST('/api/v1/config-sets/{id}/gray-releases', {
            params: { path: { id: set.id } },
            body: { message: v.message, version, selector: v.selector ?? '', targets: parseTargets(v.targets) },
          }),
        );
      }
      return unwrap(
        await api.POST('/api/v1/config-sets/{id}/releases', {
          params: { path: { id: set.id } },
          body: { message: v.message, version },
        }),
      );
    },
  });

  async function saveItem(form: ItemForm) {
    setItemFailure(undefined);
    // An edit keeps the item's name whatever the form holds.
    const v = { ...form, name: editing?.item?.name ?? form.name };
    try {
      await putItem.mutateAsync(v);
      void message.success(t('configs.itemSaved', { name: v.name }));
      setEditing(undefined);
    } catch (e) {
      setItemFailure(showProblemOnForm(itemForm, e, ['name', 'format', 'secret', 'content']));
    }
  }

  async function doPublish(v: { message: string; selector?: string; targets?: string }) {
    setPublishFailure(undefined);
    try {
      const release = await publish.mutateAsync(v);
      void message.success(t('configs.published', { number: release.number }));
      setPublishing(undefined);
      publishForm.resetFields();
      invalidate();
    } catch (e) {
      setPublishFailure(showProblemOnForm(publishForm, e, ['message', 'selector', 'targets']));
    }
  }

  if (draft.error) return <ProblemAlert error={draft.error} onRetry={() => void draft.refetch()} />;
  if (!draft.data) return <Skeleton active />;
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <Space wrap>
        <Button
          onClick={() => {
            setItemFailure(undefined);
            setEditing({});
          }}
        >
          {t('configs.addItem')}
        </Button>
        {/* Not disabled without visible changes: a secret's change is not visible (masked). */}
        <Button type="primary" disabled={draft.data.items.length === 0} onClick={() => setPublishing('full')}>
          {t('configs.publish')}
        </Button>
        <Button disabled={draft.data.items.length === 0 || set.latest_release === 0} onClick={() => setPublishing('gray')}>
          {t('configs.publishGray')}
        </Button>
        <Typography.Text type="secondary">
          {t('configs.draftVersion', { version: draft.data.version, editor: draft.data.last_editor || '—' })}
        </Typography.Text>
      </Space>
      <Table<DraftItem>
        rowKey="name"
        size="small"
        pagination={false}
        dataSource={draft.data.items}
        scroll={{ x: 'max-content' }}
        locale={{ emptyText: <Empty description={t('configs.emptyDraft')} /> }}
        columns={[
          { title: t('configs.item'), dataIndex: 'name' },
          { title: t('configs.format'), dataIndex: 'format' },
          {
            title: t('configs.content'),
            key: 'content',
            render: (_, i) => (
              <Typography.Text code ellipsis style={{ maxWidth: 420 }}>
                {i.secret ? i.masked || '******' : i.content.split('\n').slice(0, 2).join(' ⏎ ')}
              </Typography.Text>
            ),
          },
          { title: t('configs.secret'), dataIndex: 'secret', render: (s: boolean) => (s ? <Tag>{t('configs.secret')}</Tag> : '—') },
          {
            title: '',
            key: 'actions',
            render: (_, i) => (
              <Space>
                <Button
                  size="small"
                  aria-label={t('configs.editItem', { name: i.name })}
                  onClick={() => {
                    setItemFailure(undefined);
                    setEditing({ item: i });
                  }}
                >
                  {t('configs.edit')}
                </Button>
                <Popconfirm
                  title={t('configs.deleteItem', { name: i.name })}
                  onConfirm={async () => {
                    try {
                      await deleteItem.mutateAsync(i.name);
                    } catch (e) {
                      void message.error(toProblem(e).detail);
                    }
                  }}
                >
                  <Button size="small" danger aria-label={t('configs.deleteItem', { name: i.name })}>
                    {t('configs.delete')}
                  </Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      <Card
        size="small"
        title={
          set.latest_release > 0
            ? t('configs.changesSince', { number: set.latest_release })
            : t('configs.changesFirst')
        }
      >
        {last.error ? (
          <ProblemAlert error={last.error} onRetry={() => void last.refetch()} />
        ) : (
          <DiffView changes={changes} empty={t('configs.noChanges')} />
        )}
      </Card>
      <Modal
        open={!!editing}
        width={720}
        title={editing?.item ? t('configs.editItem', { name: editing.item.name }) : t('configs.addItem')}
        okText={t('configs.save')}
        okButtonProps={{ loading: putItem.isPending }}
        onOk={() => itemForm.submit()}
        onCancel={() => setEditing(undefined)}
        destroyOnHidden
      >
        {itemFailure && <Alert type="error" showIcon message={itemFailure} style={{ marginBottom: 12 }} />}
        <Form<ItemForm>
          form={itemForm}
          layout="vertical"
          onFinish={saveItem}
          preserve={false}
          initialValues={{
            name: editing?.item?.name ?? '',
            format: (editing?.item?.format as Format | undefined) ?? 'properties',
            secret: editing?.item?.secret ?? false,
            content: editing?.item && !editing.item.secret ? editing.item.content : '',
          }}
        >
          <Form.Item name="name" label={t('configs.item')} rules={editing?.item ? [] : [{ required: true, whitespace: true }]}>
            <Input readOnly={!!editing?.item} placeholder="app.properties" />
          </Form.Item>
          <Form.Item name="format" label={t('configs.format')}>
            <Select options={FORMATS.map((f) => ({ value: f, label: f }))} />
          </Form.Item>
          <Form.Item name="secret" valuePropName="checked" extra={t('configs.secretHelp')}>
            <Checkbox>{t('configs.secret')}</Checkbox>
          </Form.Item>
          <Form.Item
            name="content"
            label={t('configs.content')}
            dependencies={['secret']}
            rules={[
              ({ getFieldValue }) => ({
                // An empty secret would replace the stored value with nothing.
                validator: (_, v: string | undefined) =>
                  getFieldValue('secret') && !v ? Promise.reject(new Error(t('configs.secretRequired'))) : Promise.resolve(),
              }),
            ]}
          >
            <Input.TextArea rows={10} style={{ fontFamily: 'monospace' }} />
          </Form.Item>
        </Form>
      </Modal>
      <Modal
        open={!!publishing}
        title={publishing === 'gray' ? t('configs.publishGray') : t('configs.publish')}
        okText={publishing === 'gray' ? t('configs.publishGray') : t('configs.publish')}
        okButtonProps={{ loading: publish.isPending }}
        onOk={() => publishForm.submit()}
        onCancel={() => {
          setPublishing(undefined);
          setPublishFailure(undefined);
        }}
        destroyOnHidden
      >
        {publishFailure && <Alert type="error" showIcon message={publishFailure} style={{ marginBottom: 12 }} />}
        <Form form={publishForm} layout="vertical" onFinish={doPublish} preserve={false}>
          <Form.Item name="message" label={t('configs.message')} rules={[{ required: true, whitespace: true }]}>
            <Input autoFocus />
          </Form.Item>
          {publishing === 'gray' && (
            <>
              <Form.Item name="selector" label={t('configs.selector')} extra={t('configs.selectorHelp')}>
                <Input placeholder="zone=a,canary=true" />
              </Form.Item>
              <Form.Item name="targets" label={t('configs.targets')} extra={t('configs.targetsHelp')}>
                <Input placeholder="eu-1/blue" />
              </Form.Item>
            </>
          )}
        </Form>
      </Modal>
    </Space>
  );
}

/** Releases: history, the diff between two, rollback. */
function ReleasesTab({ set }: { set: ConfigSet }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const invalidate = useInvalidateSet(set.id);
  const pages = useCursorPages(set.id);
  const [from, setFrom] = useState<number>();
  const [to, setTo] = useState<number>();
  const [rollingBack, setRollingBack] = useState<Release>();
  const [failure, setFailure] = useState<string>();
  const [form] = Form.useForm<{ message: string }>();
  const list = useQuery({
    queryKey: ['config-set', set.id, 'releases', pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets/{id}/releases', {
          params: { path: { id: set.id }, query: { limit: 20, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const latest = set.latest_release;
  const diffTo = to ?? latest;
  const diffFrom = from ?? Math.max(0, diffTo - 1);
  const diff = useQuery({
    queryKey: ['config-set', set.id, 'diff', diffFrom, diffTo],
    enabled: diffTo > 0,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets/{id}/diff', {
          params: { path: { id: set.id }, query: { from: String(diffFrom), to: String(diffTo) } },
        }),
      ),
  });
  const rollback = useMutation({
    mutationFn: async (v: { to: number; message: string }) =>
      unwrap(await api.POST('/api/v1/config-sets/{id}/rollback', { params: { path: { id: set.id } }, body: v })),
  });

  async function doRollback(v: { message: string }) {
    if (!rollingBack) return;
    setFailure(undefined);
    try {
      const r = await rollback.mutateAsync({ to: rollingBack.number, message: v.message });
      void message.success(t('configs.rolledBack', { number: r.number, to: rollingBack.number }));
      setRollingBack(undefined);
      invalidate();
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['message', 'to']));
    }
  }

  const numbers = Array.from({ length: latest + 1 }, (_, i) => ({
    value: i,
    label: i === 0 ? t('configs.nothing') : `#${i}`,
  })).reverse();
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <CursorTable<Release>
        rowKey="id"
        size="small"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next_cursor}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('configs.noReleases')}
        columns={[
          { title: '#', dataIndex: 'number' },
          {
            title: t('configs.kind'),
            key: 'kind',
            render: (_, r) => (
              <Space>
                <Tag>{t(`configs.kinds.${r.kind}`)}</Tag>
                {r.kind === 'rollback' && r.restores ? `→ #${r.restores}` : null}
                {r.gray && <ToneTag tone="warning">{t('configs.gray')} · {r.gray.state}</ToneTag>}
              </Space>
            ),
          },
          { title: t('configs.message'), dataIndex: 'message' },
          { title: t('configs.author'), dataIndex: 'author' },
          { title: t('configs.createdAt'), dataIndex: 'created_at', render: formatTime },
          {
            title: '',
            key: 'actions',
            render: (_, r) => (
              <Space>
                <Button size="small" onClick={() => { setFrom(Math.max(0, r.number - 1)); setTo(r.number); }}>
                  {t('configs.showDiff')}
                </Button>
                {r.number !== latest && (
                  <Button size="small" danger onClick={() => { setFailure(undefined); setRollingBack(r); }}>
                    {t('configs.rollbackTo', { number: r.number })}
                  </Button>
                )}
              </Space>
            ),
          },
        ]}
      />
      {latest > 0 && (
        <Card
          size="small"
          title={
            <Space wrap>
              {t('configs.diffBetween')}
              <Select
                aria-label={t('configs.diffFrom')}
                style={{ width: 130 }}
                value={diffFrom}
                onChange={setFrom}
                options={numbers}
              />
              →
              <Select
                aria-label={t('configs.diffTo')}
                style={{ width: 130 }}
                value={diffTo}
                onChange={setTo}
                options={numbers.filter((n) => n.value > 0)}
              />
            </Space>
          }
        >
          {diff.error ? (
            <ProblemAlert error={diff.error} onRetry={() => void diff.refetch()} />
          ) : diff.data ? (
            <DiffView changes={diff.data.items} empty={t('configs.sameReleases')} />
          ) : (
            <Skeleton active />
          )}
        </Card>
      )}
      <Modal
        open={!!rollingBack}
        title={t('configs.rollbackTo', { number: rollingBack?.number ?? 0 })}
        okText={t('configs.rollback')}
        okButtonProps={{ danger: true, loading: rollback.isPending }}
        onOk={() => form.submit()}
        onCancel={() => setRollingBack(undefined)}
        destroyOnHidden
      >
        <Typography.Paragraph>{t('configs.rollbackHelp')}</Typography.Paragraph>
        {failure && <Alert type="error" showIcon message={failure} style={{ marginBottom: 12 }} />}
        <Form form={form} layout="vertical" onFinish={doRollback} preserve={false}>
          <Form.Item name="message" label={t('configs.message')} rules={[{ required: true, whitespace: true }]}>
            <Input autoFocus />
          </Form.Item>
        </Form>
      </Modal>
    </Space>
  );
}

function GrayTab({ set }: { set: ConfigSet }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const invalidate = useInvalidateSet(set.id);
  const pages = useCursorPages(set.id);
  const list = useQuery({
    queryKey: ['config-set', set.id, 'gray', pages.cursor],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets/{id}/gray-releases', {
          params: { path: { id: set.id }, query: { limit: 20, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  const decide = useMutation({
    mutationFn: async ({ number, step }: { number: number; step: 'promote' | 'abandon' }) => {
      const path = { id: set.id, number };
      return step === 'promote'
        ? unwrap(await api.POST('/api/v1/config-sets/{id}/gray-releases/{number}/promote', { params: { path } }))
        : unwrap(await api.POST('/api/v1/config-sets/{id}/gray-releases/{number}/abandon', { params: { path } }));
    },
    onSuccess: (_, v) => {
      void message.success(t(v.step === 'promote' ? 'configs.promoted' : 'configs.abandoned', { number: v.number }));
      invalidate();
    },
    onError: (e) => void message.error(toProblem(e).detail),
  });
  return (
    <CursorTable<GrayRule>
      rowKey="release_id"
      size="small"
      pages={pages}
      items={list.data?.items}
      nextCursor={list.data?.next_cursor}
      error={list.error}
      onRetry={() => void list.refetch()}
      empty={t('configs.noGray')}
      columns={[
        { title: '#', dataIndex: 'number' },
        { title: t('configs.selector'), dataIndex: 'selector', render: (s: string) => <code>{s || '—'}</code> },
        {
          title: t('configs.targets'),
          dataIndex: 'targets',
          render: (ts: GrayRule['targets']) =>
            ts.length ? ts.map((x) => (x.partition ? `${x.cluster}/${x.partition}` : x.cluster)).join(', ') : '—',
        },
        { title: t('configs.base'), dataIndex: 'base', render: (n: number) => `#${n}` },
        { title: t('configs.state'), dataIndex: 'state', render: (s: string) => <Tag>{s}</Tag> },
        { title: t('configs.author'), dataIndex: 'author' },
        { title: t('configs.decidedBy'), dataIndex: 'decided_by', render: (s: string) => s || '—' },
        {
          title: '',
          key: 'actions',
          render: (_, g) =>
            g.state === 'active' && (
              <Space>
                <Button size="small" type="primary" loading={decide.isPending} onClick={() => decide.mutate({ number: g.number, step: 'promote' })}>
                  {t('configs.promote')}
                </Button>
                <Button size="small" danger loading={decide.isPending} onClick={() => decide.mutate({ number: g.number, step: 'abandon' })}>
                  {t('configs.abandon')}
                </Button>
              </Space>
            ),
        },
      ]}
    />
  );
}

/** The configuration an instance of this set's level gets, each key with the set it comes from. */
function EffectiveTab({ set }: { set: ConfigSet }) {
  const { t } = useTranslation();
  const effective = useQuery({
    queryKey: ['config-set', set.id, 'effective', set.latest_release],
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/effective-config', {
          params: {
            path: { id: set.tenant_id },
            query: {
              application: set.application,
              environment: set.environment || undefined,
              cluster: set.cluster || undefined,
            },
          },
        }),
      ),
  });
  if (effective.error) return <ProblemAlert error={effective.error} onRetry={() => void effective.refetch()} />;
  if (!effective.data) return <Skeleton active />;
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Typography.Paragraph>
        {t('configs.effectiveHelp')}{' '}
        {(effective.data.sets ?? []).map((s) => (
          <Tag key={s.config_set_id}>
            <Link to={`/config/${s.config_set_id}`}>{s.origin}</Link> @{s.latest_release}
          </Tag>
        ))}
      </Typography.Paragraph>
      <Table<Entry>
        rowKey={(e) => `${e.item}/${e.key}`}
        size="small"
        pagination={false}
        dataSource={effective.data.entries}
        scroll={{ x: 'max-content' }}
        locale={{ emptyText: <Empty description={t('configs.noEffective')} /> }}
        columns={[
          { title: t('configs.item'), dataIndex: 'item' },
          { title: t('configs.key'), dataIndex: 'key', render: (k: string) => k || '—' },
          {
            title: t('configs.value'),
            dataIndex: 'value',
            render: (v: string) => (
              <Typography.Text code ellipsis style={{ maxWidth: 360 }}>
                {v}
              </Typography.Text>
            ),
          },
          {
            title: t('configs.origin'),
            key: 'origin',
            render: (_, e) => (
              <Space>
                <Link to={`/config/${e.origin_set_id}`}>{e.origin}</Link>
                {`@${e.origin_release}`}
                {e.origin_set_id === set.id && <ToneTag tone="info">{t('configs.thisSet')}</ToneTag>}
              </Space>
            ),
          },
        ]}
      />
    </Space>
  );
}

function InstancesTab({ set }: { set: ConfigSet }) {
  const { t } = useTranslation();
  const pages = useCursorPages(set.id);
  const list = useQuery({
    queryKey: ['config-set', set.id, 'instances', pages.cursor],
    refetchInterval: 10_000,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/config-sets/{id}/instances', {
          params: { path: { id: set.id }, query: { limit: 50, cursor: pages.cursor || undefined } },
        }),
      ),
  });
  return (
    <CursorTable<Instance>
      rowKey="instance"
      size="small"
      pages={pages}
      items={list.data?.items}
      nextCursor={list.data?.next_cursor}
      error={list.error}
      onRetry={() => void list.refetch()}
      empty={t('configs.noInstances')}
      columns={[
        { title: t('configs.instance'), dataIndex: 'instance' },
        { title: 'IP', dataIndex: 'ip' },
        {
          title: t('configs.labels'),
          dataIndex: 'labels',
          render: (labels: Record<string, string>) =>
            Object.entries(labels ?? {}).map(([k, v]) => <Tag key={k}>{`${k}=${v}`}</Tag>),
        },
        {
          title: t('configs.release'),
          key: 'release',
          render: (_, i) => (
            <Space>
              {`#${i.release_number}`}
              {i.gray && <ToneTag tone="warning">{t('configs.gray')}</ToneTag>}
            </Space>
          ),
        },
        { title: t('configs.lastSeen'), dataIndex: 'last_seen', render: formatTime },
      ]}
    />
  );
}

/** One config set: draft, releases, gray releases, the effective view and who holds what. */
export default function ConfigSetPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const { tenantId } = useSession();
  const set = useQuery({
    queryKey: ['config-set', id],
    queryFn: async () => unwrap(await api.GET('/api/v1/config-sets/{id}', { params: { path: { id } } })),
  });
  if (set.error) return <ProblemAlert error={set.error} onRetry={() => void set.refetch()} />;
  if (!set.data) return <Skeleton active />;
  const s = set.data;
  return (
    <>
      <Typography.Title level={2}>
        {t('configs.setTitle', { application: s.application, level: setLevel(s, t('configs.base')) })}
      </Typography.Title>
      <Descriptions size="small" column={{ xs: 1, md: 4 }} style={{ marginBottom: 16 }}>
        <Descriptions.Item label={t('configs.environment')}>{s.environment || t('configs.base')}</Descriptions.Item>
        <Descriptions.Item label={t('configs.cluster')}>{s.cluster || '—'}</Descriptions.Item>
        <Descriptions.Item label={t('configs.latestRelease')}>
          {s.latest_release > 0 ? `#${s.latest_release}` : t('configs.unreleased')}
        </Descriptions.Item>
        <Descriptions.Item label={t('configs.shared')}>{s.shared ? t('requests.yes') : t('requests.no')}</Descriptions.Item>
      </Descriptions>
      {tenantId && tenantId !== s.tenant_id && (
        <Alert type="info" showIcon message={t('configs.otherTenant')} style={{ marginBottom: 16 }} />
      )}
      <Tabs
        items={[
          { key: 'draft', label: t('configs.draft'), children: <DraftTab set={s} /> },
          { key: 'releases', label: t('configs.releases'), children: <ReleasesTab set={s} /> },
          { key: 'gray', label: t('configs.grayReleases'), children: <GrayTab set={s} /> },
          { key: 'effective', label: t('configs.effective'), children: <EffectiveTab set={s} /> },
          { key: 'instances', label: t('configs.instances'), children: <InstancesTab set={s} /> },
        ]}
      />
    </>
  );
}
