// Kubernetes quantities ("500m", "4Gi", "2") as numbers, for charts.

const SUFFIXES: Record<string, number> = {
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value, or `undefined` when it is not one. */
export function parseQuantity(text: string | null | undefined): number | undefined {
  const found = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([KMGTPE]i|[mkMGTPE])?\s*$/.exec(text ?? '');
  if (!found) return undefined;
  return Number(found[1]) * (found[2] ? SUFFIXES[found[2]] : 1);
}

/** How full a quota is, 0..100 (over 100 when over it); `undefined` without a limit. */
export function percentUsed(used: string, hard: string | null | undefined): number | undefined {
  const limit = parseQuantity(hard);
  const amount = parseQuantity(used);
  if (limit === undefined || amount === undefined) return undefined;
  if (limit === 0) return amount > 0 ? 100 : 0;
  return Math.round((amount / limit) * 1000) / 10;
}
