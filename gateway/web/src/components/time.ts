/** A timestamp as the reader's locale writes it; a dash when there is none. */
export function formatTime(at: string | null | undefined): string {
  if (!at) return '—';
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? at : date.toLocaleString();
}
