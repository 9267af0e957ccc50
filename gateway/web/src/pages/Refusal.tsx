import { Button, Result } from 'antd';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';

/** A 404 or 403 in place of a screen (lazy: Result's illustrations stay out of the first screen). */
export default function Refusal({ status }: { status: '404' | '403' }) {
  const { t } = useTranslation();
  return (
    <Result
      status={status}
      title={status}
      subTitle={status === '404' ? t('errors.notFound') : t('errors.forbidden')}
      extra={
        <Link to="/dashboard">
          <Button type="primary">{t('errors.home')}</Button>
        </Link>
      }
    />
  );
}
