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

/**
 * Like `showProblemOnForm` for forms whose fields are nested or named
 * otherwise than the API's: `resolve` maps the problem's `field`
 * (`parameters.replicas`, `spec.services[0].name`) to the form's name path,
 * or to nothing. The detail is answered when no field takes it.
 */
export function placeProblem(
  form: FormInstance,
  error: unknown,
  resolve: (field: string) => (string | number)[] | string | undefined,
): string | undefined {
  const problem = toProblem(error);
  const name = problem.field ? resolve(problem.field) : undefined;
  if (name === undefined) return problem.field ? `${problem.field}: ${problem.detail}` : problem.detail;
  form.setFields([{ name, errors: [problem.detail] }]);
  return undefined;
}

/**
 * "Pick one" for a select: a validator rather than `required`, because a
 * required rule makes Ant Design put `aria-required` on the select's box (a
 * div, where ARIA does not allow it: axe's aria-allowed-attr), not only on
 * its input.
 */
export function picked(message: string) {
  return {
    validator: async (_: unknown, value: unknown) => {
      if (value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0)) {
        throw new Error(message);
      }
    },
  };
}
