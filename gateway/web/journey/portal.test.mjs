// The portal in a real browser (Debian's chromium, headless, driven by
// playwright-core) against a platform scripts/web-journey started: the
// local administrator logs in, sees the dashboard and the clusters, and
// approves a resource request a tenant filed. Each screen is checked with
// axe (no serious or critical violation) and photographed into
// $PORTAL_ARTIFACTS; the first screen's interactive time and the initial
// JavaScript's gzipped size are printed, the size checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

const url = process.env.PORTAL_URL;
const adminToken = process.env.PORTAL_ADMIN_TOKEN;
const adminPassword = process.env.PORTAL_ADMIN_PASSWORD;
const artifacts = process.env.PORTAL_ARTIFACTS ?? 'journey-artifacts';
const chromiumPath = process.env.PORTAL_CHROMIUM ?? '/usr/bin/chromium';
/** The budget of the first screen's JavaScript, gzipped (issue #19). */
const INITIAL_JS_BUDGET = 300 * 1024;

assert.ok(url && adminToken && adminPassword, 'run through scripts/web-journey (PORTAL_URL, PORTAL_ADMIN_TOKEN, PORTAL_ADMIN_PASSWORD)');
mkdirSync(artifacts, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
});

/** The API as the bootstrap administrator, to set up what the tenant side would have done. */
async function admin(method, path, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** No serious or critical accessibility violation on the screen as it is. */
async function accessible(page, screen) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const described = bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(described, [], `${screen}: accessibility violations`);
}

async function photograph(page, name) {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}

test('the local administrator logs in, sees the dashboard and clusters, and approves a resource request that becomes the quota', async () => {
  const suffix = Date.now().toString(36);
  const tenant = await admin('POST', '/api/v1/tenants', { name: `acme-${suffix}`, display_name: 'ACME Corp' });
  const spec = await admin('POST', '/api/v1/specs', {
    name: `medium-${suffix}`,
    display_name: '4 CPU / 32 GiB',
    amounts: { 'requests.cpu': '4', 'requests.memory': '32Gi' },
  });
  const project = `billing-${suffix}`;
  const request = await admin('POST', `/api/v1/tenants/${tenant.id}/requests`, {
    project_name: project,
    applicant: 'Jane Doe',
    email: 'jane@acme.example',
    application: 'billing-api',
    purpose: 'new billing',
    server_type: 'application-host',
    data_centre: 'dc1',
    spec_id: spec.id,
    count: 2,
  });
  await admin('POST', `/api/v1/requests/${request.id}/submit`);

  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  const scripts = [];
  page.on('response', (r) => {
    if (r.request().resourceType() === 'script') scripts.push(r);
  });

  // First screen: the login page, interactive when its user name field takes input.
  const started = performance.now();
  await page.goto(`${url}/`);
  const username = page.getByLabel('User name');
  await username.waitFor({ state: 'visible' });
  await assert.doesNotReject(username.fill('admin'));
  const interactive = performance.now() - started;
  let initialJs = 0;
  for (const r of scripts) initialJs += gzipSync(await r.body()).length;
  console.log(`first screen interactive in ${interactive.toFixed(0)} ms; initial JavaScript ${(initialJs / 1024).toFixed(1)} KB gzipped (${scripts.length} files)`);
  assert.ok(initialJs <= INITIAL_JS_BUDGET, `initial JavaScript is ${initialJs} bytes gzipped, over ${INITIAL_JS_BUDGET}`);
  assert.match(page.url(), /\/login\?return_to=/);
  await accessible(page, 'login');
  await photograph(page, '01-login');

  // A wrong password shows the gateway's problem detail.
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();

  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.getByRole('combobox', { name: 'Tenant' }).waitFor();
  await accessible(page, 'dashboard');
  await photograph(page, '02-dashboard');

  await page.getByRole('link', { name: 'Clusters and data centres' }).click();
  await page.getByRole('heading', { name: 'Clusters and data centres' }).waitFor();
  await page.getByRole('cell', { name: 'dc1', exact: true }).first().waitFor();
  await accessible(page, 'clusters');
  await photograph(page, '03-clusters');

  await page.getByRole('link', { name: 'Resource requests' }).click();
  const row = page.getByRole('row').filter({ hasText: project });
  await row.waitFor();
  await accessible(page, 'requests');
  await photograph(page, '04-requests');
  await row.getByRole('button', { name: 'Approve' }).click();
  await page.getByText(`Approved the request for ${project}`).waitFor();
  await row.waitFor({ state: 'detached' });
  const approved = await admin('GET', `/api/v1/requests/${request.id}`);
  assert.equal(approved.state, 'approved');
  assert.ok(approved.steps.some((s) => s.to === 'approved' && s.actor.includes('admin')), JSON.stringify(approved.steps));

  // Provisioned, the request becomes the tenant's quota: the dashboard's table and chart show it.
  await admin('POST', `/api/v1/requests/${request.id}/provision`, { clusters: ['dc1-prod'] });
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.getByRole('cell', { name: 'requests.cpu' }).first().waitFor();
  await page.getByRole('img', { name: /Used against quota/ }).waitFor();
  await accessible(page, 'dashboard with quota');
  await photograph(page, '05-dashboard-quota');

  // The language switch turns the console Chinese.
  await page.locator('.ant-segmented-item', { hasText: '简体中文' }).click();
  await page.getByRole('heading', { name: '概览' }).waitFor();
  await photograph(page, '06-dashboard-zh');

  await page.getByRole('button', { name: '退出登录' }).click();
  await page.waitForURL(/\/login/);
  await context.close();
});
