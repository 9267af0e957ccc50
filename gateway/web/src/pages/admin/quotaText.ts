// A tenant's quota as the admin console edits it: text lines, one limit a line.

export interface QuotaLevels {
  hard: Record<string, string>;
  clusters: Record<string, Record<string, string>>;
  data_centres: Record<string, Record<string, string>>;
  dr_reserve: Record<string, string>;
}

export interface ScopeLines {
  level: string;
  key?: string;
  lines: { resource: string; hard?: string | null }[];
}

/** The quota the usage report shows (hard limits per level), as levels. */
export function quotaFromUsage(scopes: ScopeLines[]): QuotaLevels {
  const quota: QuotaLevels = { hard: {}, clusters: {}, data_centres: {}, dr_reserve: {} };
  for (const s of scopes) {
    const hard = Object.fromEntries(s.lines.filter((l) => l.hard != null).map((l) => [l.resource, l.hard!]));
    if (Object.keys(hard).length === 0) continue;
    if (s.level === 'tenant') quota.hard = hard;
    else if (s.level === 'dr_reserve') quota.dr_reserve = hard;
    else if (s.level === 'cluster' && s.key) quota.clusters[s.key] = hard;
    else if (s.level === 'data_centre' && s.key) quota.data_centres[s.key] = hard;
  }
  return quota;
}

/** `resource=quantity` lines. */
export function limitsText(limits: Record<string, string>): string {
  return Object.entries(limits)
    .map(([r, q]) => `${r}=${q}`)
    .join('\n');
}

/** `name resource=quantity` lines. */
export function splitText(split: Record<string, Record<string, string>>): string {
  return Object.entries(split)
    .flatMap(([name, limits]) => Object.entries(limits).map(([r, q]) => `${name} ${r}=${q}`))
    .join('\n');
}

/** Reads `resource=quantity` lines; answers the first bad line's number. */
export function parseLimits(text: string): Record<string, string> | { badLine: number } {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const at = line.indexOf('=');
    if (at <= 0 || at === line.length - 1) return { badLine: i + 1 };
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

/** Reads `name resource=quantity` lines; answers the first bad line's number. */
export function parseSplit(text: string): Record<string, Record<string, string>> | { badLine: number } {
  const out: Record<string, Record<string, string>> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const [name, limit, ...rest] = line.split(/\s+/);
    const parsed = limit && rest.length === 0 ? parseLimits(limit) : { badLine: 1 };
    if ('badLine' in parsed) return { badLine: i + 1 };
    out[name] = { ...(out[name] ?? {}), ...(parsed as Record<string, string>) };
  }
  return out;
}
