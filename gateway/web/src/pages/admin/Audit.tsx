import { useState } from 'react';
import { Button, DatePicker, Empty, Form, Input, Select, Space, Table, Typography } from 'antd';
import type { Dayjs } from 'dayjs';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, unwrap, type Answer } from '../../api/client';
import { ProblemAlert } from '../../components/ProblemAlert';
import { formatTime } from '../../components/time';
import { useSession } from '../../session';
import { useTenants } from '../../Shell';

type AuditRecord = Answer<'/api/v1/audit', 'get'>[number];

export interface AuditFilter {
  actor?: string;
  tenant_id?: string;
  action?: string;
  since?: string;
  until?: string;
}

/** The filter as the query string `GET /audit` takes (empty fields left out), optionally as CSV. */
export function auditQuery(filter: AuditFilter, format?: 'csv'): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  if (format) q.set('format', format);
  return q.toString();
}

interface FilterForm {
  actor?: string;
  tenant_id?: string;
  action?: string;
  range?: [Dayjs | null, Dayjs | null] | null;
}

/**
 * The platform's audit log, newest first, filtered by actor, tenant, action
 * (prefix) and time; exported as CSV with the same filter. The gateway
 * answers up to 10,000 records a query: older ones are reached by moving the
 * window (`until`) to the oldest record shown.
 */
export default function Audit() {
  const { t } = useTranslation();
  const { whoami } = useSession();
  const tenants = useTenants(!!whoami);
  const [form] = Form.useForm<FilterForm>();
  const [filter, setFilter] = useState<AuditFilter>({});
  const records = useQuery({
    queryKey: ['audit', filter],
    queryFn: async () => unwrap(await api.GET('/api/v1/audit', { params: { query: { ...filter, format: 'json' } } })),
  });
  const names = new Map((tenants.data ?? []).map((x) => [x.id, x.name]));
  const items = records.data as AuditRecord[] | undefined;
  const full = (items?.length ?? 0) >= 10_000;

  function apply(v: FilterForm) {
    setFilter({
      actor: v.actor?.trim() || undefined,
      tenant_id: v.tenant_id || undefined,
      action: v.action?.trim() || undefined,
      since: v.range?.[0]?.toISOString(),
      until: v.range?.[1]?.toISOString(),
    });
  }

  return (
    <>
      <Typography.Title level={2}>{t('audit.title')}</Typography.Title>
      <Form<FilterForm> form={form} layout="inline" onFinish={apply} style={{ marginBottom: 16, rowGap: 8 }}>
        <Form.Item name="actor" label={t('audit.actor')}>
          <Input allowClear style={{ width: 180 }} />
        </Form.Item>
        <Form.Item name="tenant_id" label={t('audit.tenant')}>
          <Select
            allowClear
            showSearch
            optionFilterProp="label"
            style={{ width: 180 }}
            placeholder={t('audit.allTenants')}
            options={tenants.data?.map((x) => ({ value: x.id, label: x.name }))}
          />
        </Form.Item>
        <Form.Item name="action" label={t('audit.action')}>
          <Input allowClear style={{ width: 180 }} placeholder="configs." />
        </Form.Item>
        <Form.Item name="range" label={t('audit.between')}>
          <DatePicker.RangePicker showTime allowEmpty={[true, true]} />
        </Form.Item>
        <Space>
          <Button type="primary" htmlType="submit">
            {t('audit.apply')}
          </Button>
          <Button href={`/api/v1/audit?${auditQuery(filter, 'csv')}`} download="audit.csv">
            {t('audit.exportCsv')}
          </Button>
        </Space>
      </Form>
      {records.error ? (
        <ProblemAlert error={records.error} onRetry={() => void records.refetch()} />
      ) : (
        <>
          <Table<AuditRecord>
            rowKey="id"
            size="small"
            loading={records.isPending}
            dataSource={items}
            pagination={{ pageSize: 50, showSizeChanger: false, showTotal: (n) => t('audit.count', { n }) }}
            scroll={{ x: 'max-content' }}
            locale={{ emptyText: <Empty description={t('audit.empty')} /> }}
            columns={[
              { title: t('audit.at'), dataIndex: 'at', render: formatTime },
              { title: t('audit.actor'), dataIndex: 'actor' },
              { title: t('audit.tenant'), dataIndex: 'tenant_id', render: (id: string | null) => (id ? (names.get(id) ?? id) : '—') },
              { title: t('audit.action'), dataIndex: 'action' },
              { title: t('audit.target'), dataIndex: 'target' },
              { title: t('audit.result'), dataIndex: 'result' },
              { title: t('audit.sourceIp'), dataIndex: 'source_ip' },
              {
                title: t('audit.requestId'),
                dataIndex: 'request_id',
                // Copyable: the id is what the logs are searched by, and the wide
                // table's scrolling region gets a keyboard stop (axe: scrollable-region-focusable).
                render: (r: string) => (r ? <Typography.Text code copyable>{r}</Typography.Text> : '—'),
              },
            ]}
          />
          {full && items && (
            <Button style={{ marginTop: 12 }} onClick={() => setFilter((f) => ({ ...f, until: items[items.length - 1].at }))}>
              {t('audit.older')}
            </Button>
          )}
        </>
      )}
    </>
  );
}
