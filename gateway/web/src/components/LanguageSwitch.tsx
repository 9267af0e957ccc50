import { Segmented } from 'antd';
import { useTranslation } from 'react-i18next';
import { LANGUAGES, supported, type Language } from '../i18n';

/** Two buttons rather than a select: the login page stays free of the select's code. */
export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  return (
    <Segmented<Language>
      aria-label={t('shell.language')}
      size="small"
      value={supported(i18n.resolvedLanguage)}
      onChange={(lng) => void i18n.changeLanguage(lng)}
      options={LANGUAGES.map((l) => ({ value: l.code, label: <span lang={l.code}>{l.label}</span> }))}
    />
  );
}
