import type { FormInstance } from 'antd';
import { toProblem } from '../api/problem';

/**
 * Puts an API error on the form field it names (the problem's `field`,
 * e.g. `form.count` or `username`); answers the detail when no field of the
 * form matches, for the form to show above its fields.
 */
export function showProblemOnForm(form: FormInstance, error: unknown, fields: string[]): string | undefined {
  const problem = toProblem(error);
  const field = problem.field?.split('.').pop();
  if (field && fields.includes(field)) {
    form.setFields([{ name: field, errors: [problem.detail] }]);
    return undefined;
  }
  return problem.detail;
}
