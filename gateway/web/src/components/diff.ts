// Line and item differences, for the config center's draft and release diffs.

export type LineOp = 'same' | 'added' | 'removed';

export interface DiffLine {
  op: LineOp;
  text: string;
  /** Line number before (removed and same lines). */
  before?: number;
  /** Line number after (added and same lines). */
  after?: number;
}

/** Lines of a text; a final newline does not make an empty last line. */
function lines(text: string): string[] {
  if (text === '') return [];
  const all = text.split(/\r?\n/);
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/**
 * The line-by-line difference of two texts, by longest common subsequence:
 * removed lines come before the added lines that replace them. Quadratic,
 * which is fine for config items (a 2,000-line file is 4M cells); beyond
 * that the texts are shown as one removal and one addition.
 */
export function lineDiff(before: string, after: string): DiffLine[] {
  const a = lines(before);
  const b = lines(after);
  // Common head and tail first: most edits touch a few lines in the middle.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const out: DiffLine[] = [];
  for (let i = 0; i < head; i++) out.push({ op: 'same', text: a[i], before: i + 1, after: i + 1 });
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const n = midA.length;
  const m = midB.length;
  if (n * m > 4_000_000) {
    midA.forEach((text, i) => out.push({ op: 'removed', text, before: head + i + 1 }));
    midB.forEach((text, j) => out.push({ op: 'added', text, after: head + j + 1 }));
  } else {
    // lcs[i][j]: the longest common subsequence of midA[i..] and midB[j..].
    const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = midA[i] === midB[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && midA[i] === midB[j]) {
        out.push({ op: 'same', text: midA[i], before: head + i + 1, after: head + j + 1 });
        i++;
        j++;
      } else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) {
        out.push({ op: 'removed', text: midA[i], before: head + i + 1 });
        i++;
      } else {
        out.push({ op: 'added', text: midB[j], after: head + j + 1 });
        j++;
      }
    }
  }
  for (let k = tail; k > 0; k--) {
    const i = a.length - k;
    const j = b.length - k;
    out.push({ op: 'same', text: a[i], before: i + 1, after: j + 1 });
  }
  return out;
}

export type Change = 'added' | 'removed' | 'changed';

export interface KeyChange {
  key: string;
  change: Change | string;
  before: string;
  after: string;
}

/** One item's change, shaped as the gateway's `ItemChange`. */
export interface ItemChange {
  name: string;
  change: Change | string;
  before: string;
  after: string;
  keys: KeyChange[];
}

/** An item as drafts and releases carry it. */
export interface Item {
  name: string;
  format: string;
  content: string;
  secret: boolean;
  masked?: string;
}

/** `key=value` (or `key: value`) lines of a properties item; comments and blanks skipped. */
export function properties(content: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of lines(content)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('!')) continue;
    const at = line.search(/[=:]/);
    if (at < 0) out.set(line, '');
    else out.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return out;
}

function shown(item: Item): string {
  return item.secret ? (item.masked ?? '******') : item.content;
}

/**
 * What changed from one set of items to another (a release to the draft):
 * items added, removed or changed, and for properties items each key.
 * Unchanged items are left out; the order is by item name.
 */
export function itemChanges(before: Item[], after: Item[]): ItemChange[] {
  const old = new Map(before.map((i) => [i.name, i]));
  const next = new Map(after.map((i) => [i.name, i]));
  const names = [...new Set([...old.keys(), ...next.keys()])].sort();
  const out: ItemChange[] = [];
  for (const name of names) {
    const a = old.get(name);
    const b = next.get(name);
    if (a && b && a.content === b.content && a.format === b.format && a.secret === b.secret) continue;
    const change: Change = !a ? 'added' : !b ? 'removed' : 'changed';
    const keys: KeyChange[] = [];
    const format = (b ?? a)!.format;
    if (format === 'properties' && !(a?.secret || b?.secret)) {
      const pa = properties(a?.content ?? '');
      const pb = properties(b?.content ?? '');
      for (const key of [...new Set([...pa.keys(), ...pb.keys()])].sort()) {
        const va = pa.get(key);
        const vb = pb.get(key);
        if (va === vb) continue;
        keys.push({
          key,
          change: va === undefined ? 'added' : vb === undefined ? 'removed' : 'changed',
          before: va ?? '',
          after: vb ?? '',
        });
      }
    }
    out.push({ name, change, before: a ? shown(a) : '', after: b ? shown(b) : '', keys });
  }
  return out;
}
