import { describe, expect, it } from 'vitest';
import { limitsText, parseLimits, parseSplit, quotaFromUsage, splitText } from './quotaText';

describe('quota text', () => {
  it('reads the quota levels back from the usage report', () => {
    const quota = quotaFromUsage([
      { level: 'tenant', lines: [{ resource: 'requests.cpu', hard: '8' }, { resource: 'pods', hard: null }] },
      { level: 'data_centre', key: 'dc1', lines: [{ resource: 'requests.cpu', hard: '4' }] },
      { level: 'cluster', key: 'dc1-a', lines: [{ resource: 'requests.cpu', hard: '2' }] },
      { level: 'dr_reserve', lines: [{ resource: 'requests.cpu', hard: '1' }] },
      { level: 'project', lines: [{ resource: 'requests.cpu', hard: '3' }] },
    ]);
    expect(quota).toEqual({
      hard: { 'requests.cpu': '8' },
      data_centres: { dc1: { 'requests.cpu': '4' } },
      clusters: { 'dc1-a': { 'requests.cpu': '2' } },
      dr_reserve: { 'requests.cpu': '1' },
    });
  });

  it('round-trips limits and splits through text', () => {
    const hard = { 'requests.cpu': '8', 'requests.memory': '64Gi' };
    expect(parseLimits(limitsText(hard))).toEqual(hard);
    const split = { dc1: { 'requests.cpu': '4', pods: '10' }, dc2: { 'requests.cpu': '4' } };
    expect(parseSplit(splitText(split))).toEqual(split);
  });

  it('names the first bad line', () => {
    expect(parseLimits('requests.cpu=8\n\ncpu\n')).toEqual({ badLine: 3 });
    expect(parseLimits('=8')).toEqual({ badLine: 1 });
    expect(parseSplit('dc1 cpu=1\ndc2\n')).toEqual({ badLine: 2 });
    expect(parseSplit('dc1 cpu=1 extra')).toEqual({ badLine: 1 });
  });
});
