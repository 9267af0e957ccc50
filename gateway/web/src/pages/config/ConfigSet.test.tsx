import { configure, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { App as AntApp } from 'antd';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import i18n from '../../i18n';
import { SessionProvider } from '../../session';
import ConfigSetPage, { parseTargets } from './ConfigSet';

// Ant Design's tabs, tables and modals render slowly in jsdom on a loaded machine.
configure({ asyncUtilTimeout: 10_000 });

type Answer = { status: number; body?: unknown };

/** Stands in for the gateway: each path's answer, and the requests made. */
function gateway(answers: Record<string, Answer>) {
  const seen: Request[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (request: Request) => {
      seen.push(request);
      const path = new URL(request.url).pathname;
      const answer = answers[`${request.method} ${path}`] ?? {
        status: 404,
        body: { status: 404, title: 'Not found', detail: `no stand-in for ${request.method} ${path}`, type: 'x' },
      };
      return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
        status: answer.status,
        headers: { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json' },
      });
    }),
  );
  return seen;
}

const SET = 'c0ffee00-0000-4000-8000-000000000001';
const TENANT = 'c0ffee00-0000-4000-8000-000000000002';
const item = (content: string) => ({ name: 'app.properties', format: 'properties', content, secret: false, masked: '' });

function answers(extra: Record<string, Answer> = {}): Record<string, Answer> {
  return {
    'GET /api/v1/session': { status: 200, body: { subject: 'ldap:jdoe', platform_admin: false, break_glass: false, memberships: [] } },
    [`GET /api/v1/config-sets/${SET}`]: {
      status: 200,
      body: { id: SET, tenant_id: TENANT, application: 'shop', environment: 'production', cluster: '', shared: false, latest_release: 1 },
    },
    [`GET /api/v1/config-sets/${SET}/draft`]: {
      status: 200,
      body: { config_set_id: SET, version: 4, last_editor: 'ldap:jdoe', items: [item('pool=50\ntimeout=5s\n')] },
    },
    [`GET /api/v1/config-sets/${SET}/releases/1`]: {
      status: 200,
      body: { id: 'r1', config_set_id: SET, number: 1, message: 'defaults', author: 'ldap:ops', kind: 'publish', items: [item('pool=10\ntimeout=5s\n')] },
    },
    ...extra,
  };
}

function renderPage() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <AntApp>
      <QueryClientProvider client={client}>
        <MemoryRouter initialEntries={[`/config/${SET}`]} future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
          <SessionProvider>
            <Routes>
              <Route path="/config/:id" element={<ConfigSetPage />} />
            </Routes>
          </SessionProvider>
        </MemoryRouter>
      </QueryClientProvider>
    </AntApp>,
  );
}

describe('ConfigSetPage', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("shows the draft's change against the last release, key by key", async () => {
    gateway(answers());
    renderPage();
    expect(await screen.findByRole('heading', { name: 'Config of shop (production)' })).toBeInTheDocument();
    expect(await screen.findByText('Changes since release #1')).toBeInTheDocument();
    const change = await screen.findByRole('region', { name: 'app.properties' });
    const row = within(change).getByRole('cell', { name: 'pool' }).closest('tr')!;
    expect(row).toHaveTextContent('10');
    expect(row).toHaveTextContent('50');
    expect(within(change).queryByRole('cell', { name: 'timeout' })).toBeNull();
  });

  it("publishes the draft version it shows, and shows the gateway's refusal in the dialog", async () => {
    const seen = gateway(
      answers({
        [`POST /api/v1/config-sets/${SET}/releases`]: {
          status: 403,
          body: {
            type: 'urn:paas:problem:permission-denied',
            title: 'Permission denied',
            status: 403,
            detail: 'production needs four eyes: another operator publishes what you edited',
          },
        },
      }),
    );
    renderPage();
    const user = userEvent.setup();
    await screen.findByText('Changes since release #1');
    await user.click(screen.getByRole('button', { name: 'Publish' }));
    const dialog = await screen.findByRole('dialog');
    await user.type(within(dialog).getByLabelText('Message'), 'bigger pool');
    await user.click(within(dialog).getByRole('button', { name: 'Publish' }));
    expect(await within(dialog).findByText(/needs four eyes/)).toBeInTheDocument();
    const publish = seen.find((r) => r.method === 'POST')!;
    expect(await publish.clone().json()).toEqual({ message: 'bigger pool', version: 4 });
  });
});

describe('parseTargets', () => {
  it('reads clusters with optional partitions', () => {
    expect(parseTargets(' eu-1/blue, eu-2 ,')).toEqual([
      { cluster: 'eu-1', partition: 'blue' },
      { cluster: 'eu-2', partition: '' },
    ]);
    expect(parseTargets(undefined)).toEqual([]);
  });
});
