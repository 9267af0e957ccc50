import { describe, expect, it } from 'vitest';
import { itemChanges, lineDiff, properties } from './diff';

const ops = (before: string, after: string) => lineDiff(before, after).map((l) => `${l.op[0]} ${l.text}`);

describe('lineDiff', () => {
  it('marks the lines an edit removed and added, keeping the rest', () => {
    expect(ops('a\nb\nc\n', 'a\nB\nc\nd\n')).toEqual(['s a', 'r b', 'a B', 's c', 'a d']);
  });

  it('numbers lines on each side', () => {
    const diff = lineDiff('x\ny\n', 'w\nx\ny\n');
    expect(diff[0]).toMatchObject({ op: 'added', text: 'w', after: 1 });
    expect(diff[1]).toMatchObject({ op: 'same', text: 'x', before: 1, after: 2 });
    expect(diff[2]).toMatchObject({ op: 'same', text: 'y', before: 2, after: 3 });
  });

  it('handles empty sides and equal texts', () => {
    expect(ops('', 'a\n')).toEqual(['a a']);
    expect(ops('a\n', '')).toEqual(['r a']);
    expect(ops('a\nb', 'a\nb\n')).toEqual(['s a', 's b']);
    expect(ops('', '')).toEqual([]);
  });

  it('finds the common lines of reordered blocks', () => {
    const diff = lineDiff('1\n2\n3\n4\n', '3\n4\n1\n2\n');
    expect(diff.filter((l) => l.op === 'same')).toHaveLength(2);
    expect(diff.filter((l) => l.op === 'added')).toHaveLength(2);
    expect(diff.filter((l) => l.op === 'removed')).toHaveLength(2);
  });
});

describe('properties', () => {
  it('reads key=value and key: value, skipping comments', () => {
    expect([...properties('# c\npool = 10\ntimeout: 5s\n\n! x\nflag\n')]).toEqual([
      ['pool', '10'],
      ['timeout', '5s'],
      ['flag', ''],
    ]);
  });
});

describe('itemChanges', () => {
  const item = (name: string, content: string, format = 'properties') => ({ name, content, format, secret: false });

  it('lists added, removed and changed items with their changed keys', () => {
    const changes = itemChanges(
      [item('app.properties', 'pool=10\ntimeout=5s\n'), item('old.txt', 'x', 'text'), item('same.txt', 'y', 'text')],
      [item('app.properties', 'pool=50\ntimeout=5s\nretries=3\n'), item('new.yaml', 'a: 1\n', 'yaml'), item('same.txt', 'y', 'text')],
    );
    expect(changes.map((c) => [c.name, c.change])).toEqual([
      ['app.properties', 'changed'],
      ['new.yaml', 'added'],
      ['old.txt', 'removed'],
    ]);
    expect(changes[0].keys).toEqual([
      { key: 'pool', change: 'changed', before: '10', after: '50' },
      { key: 'retries', change: 'added', before: '', after: '3' },
    ]);
    expect(changes[1].keys).toEqual([]);
  });

  it('never shows a secret item in clear', () => {
    const [c] = itemChanges(
      [{ name: 'pw', content: 'old', format: 'text', secret: true, masked: '***' }],
      [{ name: 'pw', content: 'new', format: 'text', secret: true, masked: '***' }],
    );
    expect(c.before).toBe('***');
    expect(c.after).toBe('***');
  });
});
