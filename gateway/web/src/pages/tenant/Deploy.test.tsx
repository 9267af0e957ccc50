import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { App as AntApp } from 'antd';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import i18n from '../../i18n';
import { SessionProvider } from '../../session';
import Deploy from './Deploy';

const TENANT = '0b7c3a52-9d53-4c4b-8f3e-2f0f7d7c1a10';
const TEMPLATE = '7d0c6a1e-3b9f-4f6e-8a2d-1c5b4e3f2a10';
const VERSION = '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b';
const APP = '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

type Answer = { status: number; body?: unknown };

function gateway(answers: Record<string, Answer>) {
  const seen: Request[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (request: Request) => {
      seen.push(request.clone());
      const path = new URL(request.url).pathname;
      const answer = answers[`${request.method} ${path}`] ?? {
        status: 404,
        body: { status: 404, title: 'Not found', detail: `no ${request.method} ${path}`, type: 'x' },
      };
      return new Response(JSON.stringify(answer.body ?? null), {
        status: answer.status,
        headers: { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json' },
      });
    }),
  );
  return seen;
}

const version = {
  id: VERSION,
  template_id: TEMPLATE,
  version: '1.0.0',
  note: 'first',
  state: 'published',
  created_by: 'local:admin',
  spec: {
    parameters: [
      { name: 'tag', type: 'string', required: true },
      { name: 'replicas', type: 'integer', default: 2, minimum: 1, maximum: 10 },
    ],
    services: [{ name: 'web', containers: [{ name: 'web', image: 'registry.example/web:${tag}' }] }],
  },
};

const cluster = (name: string, data_centre: string) => ({
  id: name,
  name,
  data_centre,
  environment: 'production',
  network_domain: 'core',
  condition: { status: 'Ready', reason: '', message: '' },
});

function answers(deploy: Answer): Record<string, Answer> {
  return {
    'GET /api/v1/session': { status: 200, body: { subject: 'local:admin', platform_admin: true, memberships: [], csrf_token: 'csrf' } },
    'GET /api/v1/templates': { status: 200, body: { items: [{ id: TEMPLATE, name: 'web', description: '', tenant_id: TENANT }] } },
    [`GET /api/v1/templates/${TEMPLATE}/versions`]: { status: 200, body: { items: [version] } },
    'GET /api/v1/clusters': { status: 200, body: { items: [cluster('dc1-prod', 'dc1'), cluster('dc2-dr', 'dc2')] } },
    [`GET /api/v1/tenants/${TENANT}/projects`]: { status: 200, body: { items: [] } },
    [`POST /api/v1/tenants/${TENANT}/applications`]: deploy,
  };
}

function renderWizard() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <AntApp>
      <QueryClientProvider client={client}>
        <MemoryRouter
          initialEntries={[`/deploy?template=${TEMPLATE}&version=${VERSION}`]}
          future={{ v7_startTransition: true, v7_relativeSplatPath: true }}
        >
          <SessionProvider>
            <Routes>
              <Route path="/deploy" element={<Deploy />} />
              <Route path="/applications/:id" element={<p>application page</p>} />
            </Routes>
          </SessionProvider>
        </MemoryRouter>
      </QueryClientProvider>
    </AntApp>,
  );
}

/** Walks the wizard to its last step with `tag` 1.4 and dc1-prod picked. */
async function walk(user: ReturnType<typeof userEvent.setup>) {
  await user.type(await screen.findByLabelText('Application name'), 'shop');
  // The version from the catalog's link is picked once its list has loaded.
  await screen.findByText('1.0.0 — first');
  await user.click(screen.getByRole('button', { name: 'Next' }));
  const tag = await screen.findByLabelText(/^tag \(string\)/);
  await user.click(screen.getByRole('button', { name: 'Next' }));
  expect(await screen.findByText('Enter the tag')).toBeInTheDocument();
  await user.type(tag, '1.4');
  await user.click(screen.getByRole('button', { name: 'Next' }));
  await waitFor(() => expect(screen.getByText(/Pick clusters in one or more data centres/)).toBeVisible());
  await user.click(screen.getByLabelText('Clusters'));
  const option = await screen.findByTitle('dc1-prod · production · core · Ready');
  await user.click(option);
  await user.keyboard('{Escape}');
  await user.click(screen.getByLabelText('auto-failover'));
  await user.click(screen.getByRole('button', { name: 'Next' }));
  await screen.findByRole('button', { name: 'Deploy' });
}

describe('the deploy wizard', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
    localStorage.setItem('paas.tenant', TENANT);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('sends the parameters from the schema, the placement and the strategy, then opens the application', async () => {
    const seen = gateway(answers({ status: 201, body: { id: APP, name: 'shop' } }));
    renderWizard();
    const user = userEvent.setup();
    await walk(user);
    await user.click(screen.getByRole('button', { name: 'Deploy' }));
    expect(await screen.findByText('application page')).toBeInTheDocument();
    const body = await seen.find((r) => r.method === 'POST')!.json();
    expect(body).toEqual({
      name: 'shop',
      environment: 'test',
      template_version_id: VERSION,
      parameters: { tag: '1.4', replicas: 2 },
      placement: { explicit: [{ cluster: 'dc1-prod' }], dr_tier: 'auto-failover', toleration_seconds: 10 },
      strategy: { type: 'rolling' },
    });
  });

  it("goes back to the step of the field the API's problem names and marks it", async () => {
    gateway(
      answers({
        status: 422,
        body: { type: 'urn:paas:problem:invalid-argument', title: 'Invalid argument', status: 422, detail: 'must match ^v', field: 'parameters.tag' },
      }),
    );
    renderWizard();
    const user = userEvent.setup();
    await walk(user);
    await user.click(screen.getByRole('button', { name: 'Deploy' }));
    expect(await screen.findByText('must match ^v')).toBeInTheDocument();
    expect(screen.getByLabelText(/^tag \(string\)/)).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByRole('button', { name: 'Next' })).toBeInTheDocument();
  });
});
