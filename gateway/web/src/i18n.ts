// Chinese or English, picked from the browser on the first visit and kept
// in localStorage once the user switches.
import i18n from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { initReactI18next } from 'react-i18next';
import en from './locales/en';
import zhCN from './locales/zh-CN';

export const LANGUAGES = [
  { code: 'zh-CN', label: '简体中文' },
  { code: 'en', label: 'English' },
] as const;

export type Language = (typeof LANGUAGES)[number]['code'];

/** The supported language `lng` stands for. */
export function supported(lng: string | undefined): Language {
  return lng?.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

void i18n
  .use(LanguageDetector)
  .use(initReactI18next)
  .init({
    resources: { en: { translation: en }, 'zh-CN': { translation: zhCN } },
    supportedLngs: ['en', 'zh-CN'],
    fallbackLng: 'en',
    detection: {
      order: ['localStorage', 'navigator'],
      caches: ['localStorage'],
      lookupLocalStorage: 'paas.language',
      // `zh`, `zh-TW` and `zh-Hans-CN` browsers get Chinese; everything else English.
      convertDetectedLanguage: (lng: string) => supported(lng),
    },
    interpolation: { escapeValue: false },
  });


export default i18n;
