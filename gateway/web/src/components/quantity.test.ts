import { describe, expect, it } from 'vitest';
import { parseQuantity, percentUsed } from './quantity';

describe('parseQuantity', () => {
  it('reads plain, milli, decimal and binary quantities', () => {
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity('500m')).toBe(0.5);
    expect(parseQuantity('1.5k')).toBe(1500);
    expect(parseQuantity('4Gi')).toBe(4 * 2 ** 30);
  });

  it('refuses what is not a quantity', () => {
    expect(parseQuantity('')).toBeUndefined();
    expect(parseQuantity('lots')).toBeUndefined();
    expect(parseQuantity('4GB')).toBeUndefined();
    expect(parseQuantity(undefined)).toBeUndefined();
  });
});

describe('percentUsed', () => {
  it('compares across units and has no value without a limit', () => {
    expect(percentUsed('512Mi', '1Gi')).toBe(50);
    expect(percentUsed('1500m', '1')).toBe(150);
    expect(percentUsed('1', null)).toBeUndefined();
    expect(percentUsed('0', '0')).toBe(0);
  });
});
