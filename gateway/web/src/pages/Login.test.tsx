import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import i18n from '../i18n';
import { SessionProvider } from '../session';
import Login from './Login';

type Answer = { status: number; body?: unknown };

/** Stands in for the gateway: each path's answer, and the requests made. */
function gateway(answers: Record<string, Answer>) {
  const seen: Request[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (request: Request) => {
      seen.push(request);
      const path = new URL(request.url).pathname;
      const answer = answers[`${request.method} ${path}`] ?? { status: 404, body: { status: 404, title: 'Not found', detail: 'no such API route', type: 'x' } };
      const problem = answer.status >= 400;
      return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
        status: answer.status,
        headers: { 'content-type': problem ? 'application/problem+json' : 'application/json' },
      });
    }),
  );
  return seen;
}

function renderLogin() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter
        initialEntries={['/login?return_to=%2Fapplications']}
        future={{ v7_startTransition: true, v7_relativeSplatPath: true }}
      >
        <SessionProvider>
          <Login />
        </SessionProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

const notLoggedIn = { status: 401, body: { type: 'urn:paas:problem:unauthenticated', title: 'Unauthenticated', status: 401, detail: 'log in first' } };

describe('Login', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('lists each OIDC provider with a link that returns to where the user was going', async () => {
    gateway({
      'GET /api/v1/session': notLoggedIn,
      'GET /api/v1/login/oidc': {
        status: 200,
        body: [{ name: 'corp', display_name: 'Corp SSO', login_url: '/api/v1/login/oidc/corp' }],
      },
    });
    renderLogin();
    const link = await screen.findByRole('link', { name: 'Log in with Corp SSO' });
    expect(link).toHaveAttribute('href', '/api/v1/login/oidc/corp?return_to=%2Fapplications');
    expect(screen.getByText('Local administrator')).toBeInTheDocument();
    expect(screen.getByText('Company directory (LDAP)')).toBeInTheDocument();
  });

  it("shows the gateway's detail when the password is wrong, and puts a field's problem on the field", async () => {
    const seen = gateway({
      'GET /api/v1/session': notLoggedIn,
      'GET /api/v1/login/oidc': { status: 200, body: [] },
      'POST /api/v1/login/local': {
        status: 401,
        body: { type: 'urn:paas:problem:unauthenticated', title: 'Unauthenticated', status: 401, detail: 'wrong username or password, or the account is disabled' },
      },
    });
    renderLogin();
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText('User name'), 'admin');
    await user.type(screen.getByLabelText('Password'), 'nope');
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    expect(await screen.findByText('wrong username or password, or the account is disabled')).toBeInTheDocument();
    const login = seen.find((r) => r.method === 'POST')!;
    expect(await login.clone().json()).toEqual({ username: 'admin', password: 'nope' });

    gateway({
      'GET /api/v1/session': notLoggedIn,
      'POST /api/v1/login/local': {
        status: 422,
        body: { type: 'urn:paas:problem:invalid-argument', title: 'Invalid argument', status: 422, detail: 'at most 128 characters', field: 'username' },
      },
    });
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    await waitFor(() => expect(screen.getByLabelText('User name')).toHaveAttribute('aria-invalid', 'true'));
    expect(screen.getByText('at most 128 characters')).toBeInTheDocument();
  });
});
