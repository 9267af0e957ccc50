// What the deploy wizard's answers become in the API's deploy body
// (`placement` and `strategy`, see the Deploy schema and the README), and
// which step an API problem sends the user back to.

export type DrTier = 'manual' | 'auto-failover' | 'active-active';
export type StrategyType = 'rolling' | 'recreate' | 'blue-green' | 'canary' | 'ab' | 'shadow' | 'gray';

export interface PlacementAnswers {
  clusters: string[];
  /** Replicas per cluster; empty: the template's. */
  replicas?: Record<string, number | null | undefined>;
  dr_tier?: DrTier;
  toleration_seconds?: number | null;
  singleton?: boolean;
}

export interface StrategyAnswers {
  type: StrategyType;
  max_surge?: string | number | null;
  max_unavailable?: string | number | null;
  /** Canary traffic steps in percent, e.g. "5, 25, 50, 100". */
  steps?: string;
  pause_seconds?: number | null;
  pause?: boolean;
  match_kind?: 'header' | 'cookie' | 'query';
  match_name?: string;
  match_value?: string;
  gray_by?: 'cluster' | 'partition';
  gray_pause?: number | null;
}

/** `{"explicit": [{"cluster", "replicas"?}], "dr_tier", ...}` from the placement step. */
export function placementBody(a: PlacementAnswers): Record<string, unknown> {
  const placement: Record<string, unknown> = {
    explicit: a.clusters.map((cluster) => {
      const replicas = a.replicas?.[cluster];
      return typeof replicas === 'number' ? { cluster, replicas } : { cluster };
    }),
  };
  if (a.dr_tier) placement.dr_tier = a.dr_tier;
  if (a.dr_tier && a.dr_tier !== 'manual' && typeof a.toleration_seconds === 'number') {
    placement.toleration_seconds = a.toleration_seconds;
  }
  if (a.singleton) placement.singleton = true;
  return placement;
}

/** A surge or unavailability: a count, or a percentage kept as text. */
function amount(value: string | number | null | undefined): string | number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value === 'number') return value;
  const text = value.trim();
  return /^\d+$/.test(text) ? Number(text) : text;
}

/** Canary steps from "5, 25, 50 100": whole percentages in order. */
export function canarySteps(text: string | undefined): number[] {
  return (text ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isFinite(n));
}

/** The strategy object of the deploy body from the strategy step; `clusters` orders gray waves. */
export function strategyBody(a: StrategyAnswers, clusters: string[]): Record<string, unknown> {
  switch (a.type) {
    case 'rolling': {
      const s: Record<string, unknown> = { type: 'rolling' };
      const surge = amount(a.max_surge);
      const unavailable = amount(a.max_unavailable);
      if (surge !== undefined) s.max_surge = surge;
      if (unavailable !== undefined) s.max_unavailable = unavailable;
      return s;
    }
    case 'canary':
      return {
        type: 'canary',
        steps: canarySteps(a.steps),
        pause_seconds: a.pause_seconds ?? 0,
        pause: a.pause ?? false,
      };
    case 'ab':
      return {
        type: 'ab',
        match: { [a.match_kind ?? 'header']: { name: a.match_name ?? '', value: a.match_value ?? '' } },
      };
    case 'gray':
      return {
        type: 'gray',
        by: a.gray_by ?? 'cluster',
        ...((a.gray_by ?? 'cluster') === 'cluster' ? { order: clusters } : {}),
        pause: typeof a.gray_pause === 'number' ? a.gray_pause : 'manual',
      };
    default:
      return { type: a.type };
  }
}

/** The wizard's steps, in order. */
export const STEPS = ['version', 'parameters', 'placement', 'strategy'] as const;
export type Step = (typeof STEPS)[number];

/**
 * Where an API problem's `field` belongs: the step to go back to and the
 * form field to mark (`parameters.tag` -> the tag field of the parameters).
 */
export function problemStep(field: string | undefined): { step: Step; name?: (string | number)[] } {
  if (!field) return { step: 'strategy' };
  const [head, ...rest] = field.split('.');
  switch (head) {
    case 'name':
    case 'environment':
    case 'project_id':
    case 'template_version_id':
      return { step: 'version', name: [head] };
    case 'parameters':
      return { step: 'parameters', name: rest.length > 0 ? ['parameters', rest[0]] : ['chart_values'] };
    case 'placement':
      return { step: 'placement', name: ['clusters'] };
    case 'strategy':
      return { step: 'strategy', name: ['strategy', 'type'] };
    default:
      return { step: 'strategy' };
  }
}
