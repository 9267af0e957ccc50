// An RFC 7807 problem as the gateway answers every error (kernel::error::Problem).

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  request_id?: string;
}

/** An API error, thrown by `unwrap`; carries the problem the gateway sent. */
export class ApiProblem extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail || problem.title);
    this.name = 'ApiProblem';
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }

  get field(): string | undefined {
    return this.problem.field;
  }
}

function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Problem).status === 'number' &&
    (typeof (value as Problem).detail === 'string' || typeof (value as Problem).title === 'string')
  );
}

/**
 * Whatever was thrown, as a problem a screen can show: never a stack, never
 * `[object Object]`.
 */
export function toProblem(error: unknown, status = 0): Problem {
  if (error instanceof ApiProblem) return error.problem;
  if (isProblem(error)) return { ...error, detail: error.detail || error.title };
  const detail =
    error instanceof Error ? error.message : typeof error === 'string' && error ? error : 'unexpected error';
  return { type: 'about:blank', title: 'Error', status, detail };
}
