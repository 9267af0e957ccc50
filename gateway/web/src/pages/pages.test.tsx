import { describe, expect, it } from 'vitest';
import { refreshEvery as applicationRefresh, serviceGrid, type Placement } from './Application';
import { refreshEvery as failoversRefresh } from './admin/Failovers';
import { safeReturnTo } from './Login';

/** Placements as the document types them (free-form objects). */
const placed = (...p: Placement[]) => p as unknown as Record<string, never>[];

describe('serviceGrid', () => {
  it('lays services out against every cluster any of them is on', () => {
    const grid = serviceGrid({
      services: [
        { name: 'web', binding_id: 'b1', health: 'Healthy', health_reason: '', clusters: placed({ cluster: 'dc2-a' }, { cluster: 'dc1-a' }) },
        { name: 'db', binding_id: 'b2', health: 'Degraded', health_reason: '', clusters: placed({ cluster: 'dc1-a', health: 'Degraded' }) },
      ],
    });
    expect(grid.clusters).toEqual(['dc1-a', 'dc2-a']);
    expect(grid.rows[1].byCluster.get('dc2-a')).toBeUndefined();
    expect(grid.rows[1].byCluster.get('dc1-a')?.health).toBe('Degraded');
  });
});

describe('safeReturnTo', () => {
  it('goes only to paths on this site', () => {
    expect(safeReturnTo('/applications/1')).toBe('/applications/1');
    expect(safeReturnTo('//evil.example/x')).toBe('/');
    expect(safeReturnTo('https://evil.example')).toBe('/');
    expect(safeReturnTo(null)).toBe('/');
  });
});

describe('live refresh', () => {
  it('reads failovers every second while one is under way, every 5 s otherwise (a new one still appears)', () => {
    expect(failoversRefresh(undefined)).toBe(5000);
    expect(failoversRefresh([])).toBe(5000);
    expect(failoversRefresh([{ state: 'available' }, { state: 'failed' }])).toBe(5000);
    expect(failoversRefresh([{ state: 'available' }, { state: 'placing' }])).toBe(1000);
    expect(failoversRefresh([{ state: 'awaiting-confirmation' }])).toBe(1000);
  });

  it('reads an application faster until it and every service are Healthy', () => {
    const service = (health: 'Healthy' | 'Progressing' | 'Degraded') => ({
      name: 'web',
      binding_id: 'b',
      health,
      health_reason: '',
      clusters: [],
    });
    expect(applicationRefresh(undefined)).toBe(2000);
    expect(applicationRefresh({ health: 'Progressing', services: [service('Progressing')] })).toBe(2000);
    expect(applicationRefresh({ health: 'Healthy', services: [service('Degraded')] })).toBe(2000);
    expect(applicationRefresh({ health: 'Healthy', services: [service('Healthy')] })).toBe(5000);
  });
});
