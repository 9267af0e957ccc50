import { describe, expect, it } from 'vitest';
import i18n, { supported } from './i18n';

describe('the language switch', () => {
  it('turns the texts Chinese and back', async () => {
    await i18n.changeLanguage('zh-CN');
    expect(supported(i18n.resolvedLanguage)).toBe('zh-CN');
    expect(i18n.t('dashboard.title')).toBe('概览');
    await i18n.changeLanguage('en');
    expect(i18n.t('dashboard.title')).toBe('Dashboard');
  });
});
