import { useState } from 'react';

/**
 * Server pagination by cursor (the gateway's `limit` + `cursor`, answered
 * with `next_cursor`): remembers the cursors of the pages seen so the user
 * can go back.
 */
export function useCursorPages(resetKey: unknown = undefined) {
  const [state, setState] = useState<{ key: unknown; cursors: string[] }>({ key: resetKey, cursors: [''] });
  // A new filter or tenant starts over at the first page.
  const cursors = Object.is(state.key, resetKey) ? state.cursors : [''];
  const cursor = cursors[cursors.length - 1];
  return {
    cursor,
    page: cursors.length,
    hasPrevious: cursors.length > 1,
    next(nextCursor: string | null | undefined) {
      if (nextCursor) setState({ key: resetKey, cursors: [...cursors, nextCursor] });
    },
    previous() {
      if (cursors.length > 1) setState({ key: resetKey, cursors: cursors.slice(0, -1) });
    },
  };
}

export type CursorPages = ReturnType<typeof useCursorPages>;
