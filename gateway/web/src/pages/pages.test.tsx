import { describe, expect, it } from 'vitest';
import { serviceGrid, type Placement } from './Application';
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
