import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { useCursorPages } from './pages';

describe('useCursorPages', () => {
  it('walks forward by the server cursor and back through the cursors seen', () => {
    const { result } = renderHook(() => useCursorPages('acme'));
    expect(result.current.cursor).toBe('');
    expect(result.current.hasPrevious).toBe(false);
    act(() => result.current.next('c2'));
    act(() => result.current.next('c3'));
    expect(result.current.cursor).toBe('c3');
    expect(result.current.page).toBe(3);
    act(() => result.current.previous());
    expect(result.current.cursor).toBe('c2');
  });

  it('stays on the last page when the server sends no next cursor', () => {
    const { result } = renderHook(() => useCursorPages());
    act(() => result.current.next(undefined));
    expect(result.current.page).toBe(1);
  });

  it('starts over when the filter changes', () => {
    const { result, rerender } = renderHook(({ key }) => useCursorPages(key), { initialProps: { key: 'acme' } });
    act(() => result.current.next('c2'));
    rerender({ key: 'globex' });
    expect(result.current.cursor).toBe('');
    expect(result.current.page).toBe(1);
  });
});
