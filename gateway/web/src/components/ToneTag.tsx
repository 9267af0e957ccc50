import { Tag, type TagProps } from 'antd';

export type Tone = 'good' | 'warning' | 'bad' | 'info' | 'neutral';

// Ant Design's preset green and orange tags fall under WCAG AA's 4.5:1
// (the browser journey runs axe): these pairs are darker text on the same
// light backgrounds.
const TONES: Record<Tone, { color: string; background: string; borderColor: string } | undefined> = {
  good: { color: '#135200', background: '#f6ffed', borderColor: '#b7eb8f' },
  warning: { color: '#873800', background: '#fff7e6', borderColor: '#ffd591' },
  bad: { color: '#a8071a', background: '#fff1f0', borderColor: '#ffa39e' },
  info: { color: '#003eb3', background: '#e6f4ff', borderColor: '#91caff' },
  neutral: undefined,
};

/** A tag whose colour says good, warning, bad or info, readable on any of them. */
export function ToneTag({ tone, style, ...props }: TagProps & { tone: Tone | undefined }) {
  return <Tag {...props} style={{ ...TONES[tone ?? 'neutral'], ...style }} />;
}
