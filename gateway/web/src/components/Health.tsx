import { Badge } from 'antd';

type Status = 'success' | 'processing' | 'warning' | 'error' | 'default';

const STATUS: Record<string, Status> = {
  Healthy: 'success',
  Ready: 'success',
  Available: 'success',
  True: 'success',
  Progressing: 'processing',
  Degraded: 'warning',
  Lost: 'error',
  Failed: 'error',
  False: 'error',
  Unknown: 'default',
};

/**
 * A health, condition or state word with a coloured dot; the word keeps the
 * text colour, so it stays readable (contrast) whatever the state.
 */
export function Health({ value, title }: { value: string | undefined; title?: string }) {
  const text = value || 'Unknown';
  return <Badge status={STATUS[text] ?? 'default'} text={text} title={title} />;
}
