import { Empty, Space, Table, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { lineDiff, type DiffLine, type ItemChange } from './diff';
import { ToneTag, type Tone } from './ToneTag';

const TONE: Record<string, Tone> = { added: 'good', removed: 'bad', changed: 'info' };
const MARK: Record<DiffLine['op'], string> = { same: ' ', added: '+', removed: '-' };
// Backgrounds light enough for black text to keep WCAG AA contrast.
const BACKGROUND: Record<DiffLine['op'], string | undefined> = {
  same: undefined,
  added: '#e6ffed',
  removed: '#ffeef0',
};

/** Two texts line by line, removed lines marked `-`, added `+` (not by colour alone). */
export function LinesDiff({ before, after }: { before: string; after: string }) {
  const { t } = useTranslation();
  const diff = lineDiff(before, after);
  return (
    <pre
      role="group"
      aria-label={t('diff.lines')}
      style={{ margin: 0, fontSize: 13, border: '1px solid #f0f0f0', borderRadius: 6, overflowX: 'auto' }}
    >
      {diff.map((l, i) => (
        <div key={i} data-op={l.op} style={{ background: BACKGROUND[l.op], padding: '0 8px' }}>
          <span aria-hidden style={{ display: 'inline-block', width: 32, color: 'rgba(0,0,0,0.65)' }}>
            {l.op === 'added' ? l.after : l.before}
          </span>
          {MARK[l.op]} {l.text}
        </div>
      ))}
    </pre>
  );
}

/**
 * Item changes as the gateway's diff answers them (or `itemChanges`
 * computes for a draft): each item with its change, its keys for
 * key/value items, else its lines.
 */
export function DiffView({ changes, empty }: { changes: ItemChange[]; empty?: string }) {
  const { t } = useTranslation();
  if (changes.length === 0) return <Empty description={empty ?? t('diff.none')} />;
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="middle">
      {changes.map((c) => (
        <section key={c.name} aria-label={c.name}>
          <Space style={{ marginBottom: 8 }}>
            <Typography.Text strong>{c.name}</Typography.Text>
            <ToneTag tone={TONE[c.change]}>{t(`diff.${c.change}`, { defaultValue: c.change })}</ToneTag>
          </Space>
          {c.keys.length > 0 ? (
            <Table
              size="small"
              pagination={false}
              rowKey="key"
              dataSource={c.keys}
              columns={[
                { title: t('diff.key'), dataIndex: 'key' },
                {
                  title: t('diff.change'),
                  dataIndex: 'change',
                  render: (v: string) => <ToneTag tone={TONE[v]}>{t(`diff.${v}`, { defaultValue: v })}</ToneTag>,
                },
                { title: t('diff.before'), dataIndex: 'before', render: (v: string) => <code>{v || '—'}</code> },
                { title: t('diff.after'), dataIndex: 'after', render: (v: string) => <code>{v || '—'}</code> },
              ]}
            />
          ) : (
            <LinesDiff before={c.before} after={c.after} />
          )}
        </section>
      ))}
    </Space>
  );
}
