import { Alert, Button } from 'antd';
import { useTranslation } from 'react-i18next';
import { toProblem } from '../api/problem';

/** An API error as the user reads it: the problem's detail, its field and request id. */
export function ProblemAlert({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useTranslation();
  const problem = toProblem(error);
  const description = [
    problem.field ? `${problem.field}: ${problem.detail}` : problem.detail,
    problem.request_id ? t('common.requestId', { id: problem.request_id }) : '',
  ]
    .filter(Boolean)
    .join(' · ');
  return (
    <Alert
      type="error"
      showIcon
      role="alert"
      message={problem.title || problem.detail}
      description={description}
      action={
        onRetry ? (
          <Button size="small" onClick={onRetry}>
            {t('common.retry')}
          </Button>
        ) : undefined
      }
    />
  );
}
