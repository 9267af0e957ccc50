import { describe, expect, it } from 'vitest';
import en from './en';
import zhCN from './zh-CN';
import { supported } from '../i18n';

function keys(texts: object, prefix = ''): string[] {
  return Object.entries(texts).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

describe('translations', () => {
  it('have the same keys in English and Chinese', () => {
    expect(keys(zhCN).sort()).toEqual(keys(en).sort());
  });

  it('pick Chinese for every zh browser language and English otherwise', () => {
    expect(supported('zh')).toBe('zh-CN');
    expect(supported('zh-TW')).toBe('zh-CN');
    expect(supported('en-GB')).toBe('en');
    expect(supported('de')).toBe('en');
    expect(supported(undefined)).toBe('en');
  });
});
