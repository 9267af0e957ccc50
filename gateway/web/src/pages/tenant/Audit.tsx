// The tenant's audit trail (tenant administrators): who did what, when,
// from where and with what result; filtered by actor, action and period,
// paged from the newest, exportable as CSV.
import { useState } from 'react';
import { Badge, Button, DatePicker, Empty, Form, Input, Space, Typography } from 'antd';
import type { Dayjs } from 'dayjs';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap } from '../../api/client';
import type { components } from '../../api/schema';
import { CursorTable } from '../../components/CursorTable';
import { useCursorPages } from '../../components/pages';
import { useSession } from '../../session';

type AuditRecord = components['schemas']['Record'];

/** Rows a page shows. */
export const PAGE_SIZE = 50;

interface Filters {
  actor?: string;
  action?: string;
  since?: string;
  until?: string;
}

/**
 * One page of records from the newest: the API answers records up to
 * `until`, newest first, so the next page's cursor is the time of the first
 * record not shown (it answers no `limit`/`cursor` of its own).
 */
export function auditPage(records: AuditRecord[], size = PAGE_SIZE): { items: AuditRecord[]; next: string | undefined } {
  return { items: records.slice(0, size), next: records.length > size ? records[size].at : undefined };
}

export default function Audit() {
  const { t } = useTranslation();
  const { tenantId } = useSession();
  const [filters, setFilters] = useState<Filters>({});
  const [form] = Form.useForm<{ actor?: string; action?: string; since?: Dayjs | null; until?: Dayjs | null }>();
  const pages = useCursorPages(`${tenantId}/${JSON.stringify(filters)}`);
  const until = pages.cursor || filters.until;
  const query = { tenant_id: tenantId, actor: filters.actor, action: filters.action, since: filters.since, until };
  const list = useQuery({
    queryKey: ['audit', query],
    enabled: !!tenantId,
    queryFn: async () => auditPage(unwrap(await api.GET('/api/v1/audit', { params: { query } })) as AuditRecord[]),
  });
  const csv = new URLSearchParams(
    Object.entries({ ...query, until: filters.until, format: 'csv' }).filter((e): e is [string, string] => !!e[1]),
  );
  const title = <Typography.Title level={2}>{t('portal.audit.title')}</Typography.Title>;
  if (!tenantId) {
    return (
      <>
        {title}
        <Empty description={t('portal.common.noTenant')} />
      </>
    );
  }
  return (
    <>
      {title}
      <Form
        form={form}
        layout="inline"
        style={{ marginBottom: 16, rowGap: 8 }}
        onFinish={(v) =>
          setFilters({
            actor: v.actor?.trim() || undefined,
            action: v.action?.trim() || undefined,
            since: v.since?.toISOString(),
            until: v.until?.toISOString(),
          })
        }
      >
        <Form.Item name="actor" label={t('portal.audit.actor')}>
          <Input placeholder="ldap:j.doe" allowClear />
        </Form.Item>
        <Form.Item name="action" label={t('portal.audit.action')}>
          <Input placeholder="POST /api/v1/applications" allowClear />
        </Form.Item>
        <Form.Item name="since" label={t('portal.audit.since')}>
          <DatePicker showTime />
        </Form.Item>
        <Form.Item name="until" label={t('portal.audit.until')}>
          <DatePicker showTime />
        </Form.Item>
        <Space>
          <Button type="primary" htmlType="submit">
            {t('portal.audit.filter')}
          </Button>
          <Button
            onClick={() => {
              form.resetFields();
              setFilters({});
            }}
          >
            {t('portal.audit.clear')}
          </Button>
          <Button href={`/api/v1/audit?${csv.toString()}`} download="audit.csv">
            {t('portal.audit.csv')}
          </Button>
        </Space>
      </Form>
      <CursorTable<AuditRecord>
        rowKey="id"
        size="small"
        pages={pages}
        items={list.data?.items}
        nextCursor={list.data?.next}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={t('portal.audit.empty')}
        columns={[
          { title: t('portal.audit.at'), dataIndex: 'at', render: (at) => new Date(at).toLocaleString() },
          { title: t('portal.audit.actor'), dataIndex: 'actor' },
          { title: t('portal.audit.actionColumn'), dataIndex: 'action' },
          { title: t('portal.audit.target'), dataIndex: 'target', render: (v) => v || '—' },
          {
            title: t('portal.audit.result'),
            dataIndex: 'result',
            render: (r: string) => (
              <Badge status={/^(2|ok|success)/i.test(r) ? 'success' : /^[45]|denied|fail/i.test(r) ? 'error' : 'default'} text={r} />
            ),
          },
          { title: t('portal.audit.sourceIp'), dataIndex: 'source_ip' },
          {
            title: t('portal.audit.requestId'),
            dataIndex: 'request_id',
            // Copyable: the id is what the logs are searched by (and the wide table gets a keyboard stop).
            render: (v) => (v ? <Typography.Text code copyable>{v}</Typography.Text> : '—'),
          },
        ]}
      />
    </>
  );
}
