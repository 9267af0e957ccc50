import { describe, expect, it } from 'vitest';
import { appendChunk } from './stepLog';

const chunk = (offset: number, text: string) => ({ offset, text, truncated: false, state: 'running' });

describe('appendChunk', () => {
  it('appends chunks in order and skips what a reconnect sends again', () => {
    let log = { text: '', start: 0 };
    log = appendChunk(log, chunk(0, 'hello '));
    log = appendChunk(log, chunk(6, 'wörld\n'));
    log = appendChunk(log, chunk(6, 'wörld\nagain'));
    expect(log).toEqual({ text: 'hello wörld\nagain', start: 0 });
    expect(appendChunk(log, chunk(3, 'lo'))).toBe(log);
  });

  it('starts over after a gap (older output dropped)', () => {
    const log = appendChunk({ text: 'abc', start: 0 }, chunk(100, 'tail'));
    expect(log).toEqual({ text: 'tail', start: 100 });
  });
});
