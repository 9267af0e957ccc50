// The typed API client: paths and bodies come from src/api/schema.d.ts,
// generated from the gateway's OpenAPI document (`npm run api`), never
// written by hand.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';
import { ApiProblem, toProblem } from './problem';

let csrfToken: string | undefined;

/** Remembers the session's CSRF token; every write echoes it. */
export function setCsrfToken(token: string | undefined) {
  csrfToken = token;
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (csrfToken && !['GET', 'HEAD', 'OPTIONS'].includes(request.method)) {
      request.headers.set('X-CSRF-Token', csrfToken);
    }
    return request;
  },
};

export const api = createClient<paths>({
  // Absolute, so requests are also valid outside a browser page (tests).
  baseUrl: globalThis.location?.origin ?? '',
  credentials: 'same-origin',
  // Looked up per call, so tests can stand in for the network.
  fetch: (request) => globalThis.fetch(request),
});
api.use(csrf);

interface Reply<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The answer's data, or an `ApiProblem` thrown with the gateway's
 * problem+json (or one made from the status when the body is not one).
 */
export function unwrap<T>({ data, error, response }: Reply<T>): T {
  if (!response.ok) {
    const problem = toProblem(error ?? response.statusText, response.status);
    if (!problem.detail || problem.detail === 'unexpected error') {
      problem.detail = `${response.status} ${response.statusText}`.trim();
    }
    throw new ApiProblem({ ...problem, status: response.status });
  }
  return data as T;
}

/**
 * What an operation answers with 200 (the path's own response type: list
 * items are typed there, which the document may inline rather than name).
 */
export type Answer<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: { 200: { content: { 'application/json': infer T } } };
}
  ? T
  : never;
