import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { App as AntApp } from 'antd';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import i18n from '../../i18n';
import { SessionProvider } from '../../session';
import Tokens from './Tokens';

const TENANT = '0b7c3a52-9d53-4c4b-8f3e-2f0f7d7c1a10';
const SECRET = 'paas_3b1f0c9e7d2a4c8b9e6f1a2b3c4d5e6f7a8b9c0d';

type Answer = { status: number; body?: unknown };

/** Stands in for the gateway; answers may be functions of the request, which are recorded. */
function gateway(answers: Record<string, Answer | (() => Answer)>) {
  const seen: Request[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (request: Request) => {
      seen.push(request.clone());
      const path = new URL(request.url).pathname;
      const found = answers[`${request.method} ${path}`];
      const answer = (typeof found === 'function' ? found() : found) ?? {
        status: 404,
        body: { status: 404, title: 'Not found', detail: 'no such API route', type: 'x' },
      };
      return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
        status: answer.status,
        headers: { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json' },
      });
    }),
  );
  return seen;
}

function renderTokens() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <AntApp>
      <QueryClientProvider client={client}>
        <MemoryRouter future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
          <SessionProvider>
            <Tokens />
          </SessionProvider>
        </MemoryRouter>
      </QueryClientProvider>
    </AntApp>,
  );
}

const view = {
  id: '5f9a1c1e-2b8f-4a5e-9f59-8a3b7c2d1e0f',
  name: 'ci-deploy',
  prefix: 'paas_3b1f',
  tenant_id: TENANT,
  role: 'developer',
  created_by: 'local:admin',
  expires_at: '2027-03-07T12:00:00Z',
};

describe('Tokens', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
    localStorage.setItem('paas.tenant', TENANT);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('shows a new token\'s secret once, then only its prefix', async () => {
    let tokens: unknown[] = [];
    const seen = gateway({
      'GET /api/v1/session': { status: 200, body: { subject: 'local:admin', platform_admin: true, memberships: [], csrf_token: 'csrf' } },
      [`GET /api/v1/tenants/${TENANT}/projects`]: { status: 200, body: { items: [] } },
      'GET /api/v1/tokens': () => ({ status: 200, body: tokens }),
      'POST /api/v1/tokens': () => {
        tokens = [view];
        return { status: 201, body: { ...view, secret: SECRET } };
      },
    });
    renderTokens();
    const user = userEvent.setup();
    expect(await screen.findByText(/No API token yet/)).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'New token' }));
    const form = await screen.findByRole('dialog');
    await user.type(within(form).getByLabelText('Name'), 'ci-deploy');
    await user.click(within(form).getByRole('button', { name: 'Create' }));

    expect(await screen.findByTestId('token-secret')).toHaveTextContent(SECRET);
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    const created = seen.find((r) => r.method === 'POST')!;
    expect(await created.json()).toEqual({ name: 'ci-deploy', role: 'developer', tenant_id: TENANT, expires_in_days: 90 });
    expect(created.headers.get('X-CSRF-Token')).toBe('csrf');

    await user.click(screen.getByRole('button', { name: 'I have copied it' }));
    await waitFor(() => expect(screen.queryByTestId('token-secret')).not.toBeInTheDocument());
    expect(await screen.findByText('paas_3b1f…')).toBeInTheDocument();
    expect(document.body.textContent).not.toContain(SECRET);
  });

  it("puts the API's problem on the field it names", async () => {
    gateway({
      'GET /api/v1/session': { status: 200, body: { subject: 'local:admin', platform_admin: true, memberships: [], csrf_token: 'csrf' } },
      [`GET /api/v1/tenants/${TENANT}/projects`]: { status: 200, body: { items: [] } },
      'GET /api/v1/tokens': { status: 200, body: [] },
      'POST /api/v1/tokens': {
        status: 422,
        body: { type: 'urn:paas:problem:invalid-argument', title: 'Invalid argument', status: 422, detail: 'must be 1-365', field: 'expires_in_days' },
      },
    });
    renderTokens();
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'New token' }));
    const form = await screen.findByRole('dialog');
    await user.type(within(form).getByLabelText('Name'), 'ci');
    await user.click(within(form).getByRole('button', { name: 'Create' }));
    expect(await within(form).findByText('must be 1-365')).toBeInTheDocument();
    expect(within(form).getByLabelText('Expires in (days)')).toHaveAttribute('aria-invalid', 'true');
  });
});
