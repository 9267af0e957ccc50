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
// One axe check for every journey (it waits for animations and leaves fading
// toasts and help out).
import { accessible } from './browser.mjs';

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

/** Logs the local administrator in on a new page with the given tenant picked. */
async function loggedIn(tenantId) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1366, height: 900 } });
  // The tenant switcher starts at the stored tenant.
  await context.addInitScript((id) => localStorage.setItem('paas.tenant', id), tenantId);
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  return { context, page };
}

/** Picks `option` in the Ant Design select labelled `label`. */
async function pick(page, label, option, multiple = false) {
  // In the screen, not the header (which has its own Tenant and Project pickers).
  // Ant Design puts an aria-label on the select's box and its input alike: the input is the control.
  // The chosen value's text lies over the input of a select without search: click through it.
  await page.getByRole('main').getByLabel(label, { exact: true }).and(page.locator('input')).click({ force: true });
  await page.locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option', { hasText: option }).first().click();
  if (!multiple) await dropdownClosed(page);
}

/** Until no select's list is on screen (axe would check one still fading out). */
async function dropdownClosed(page) {
  await page.locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden)').first().waitFor({ state: 'hidden' });
}

/** Opens a portal screen from the menu and waits for its heading. */
async function open(page, link, heading = link) {
  await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: heading, level: 2 }).waitFor();
}

test('a tenant requests resources, creates an API token, edits a template and deploys it with the wizard', async () => {
  const suffix = Date.now().toString(36);
  const tenant = await admin('POST', '/api/v1/tenants', { name: `shop-${suffix}`, display_name: 'Shop Ltd' });
  const spec = await admin('POST', '/api/v1/specs', {
    name: `small-${suffix}`,
    display_name: `2 CPU / 8 GiB ${suffix}`,
    amounts: { 'requests.cpu': '2', 'requests.memory': '8Gi' },
  });
  const template = await admin('POST', '/api/v1/templates', { tenant_id: tenant.id, name: `web-${suffix}`, description: 'A web service' });
  const version = await admin('POST', `/api/v1/templates/${template.id}/versions`, {
    version: '1.0.0',
    note: 'first',
    spec: {
      parameters: [
        { name: 'tag', type: 'string', required: true, description: 'Image tag' },
        { name: 'replicas', type: 'integer', default: 1, minimum: 1, maximum: 5 },
      ],
      services: [
        {
          name: 'web',
          replicas: '${replicas}',
          containers: [
            {
              name: 'web',
              image: 'registry.example/web:${tag}',
              resources: { cpu_request: '100m', memory_request: '128Mi' },
              ports: [{ name: 'http', container_port: 8080 }],
            },
          ],
        },
      ],
    },
  });
  await admin('POST', `/api/v1/template-versions/${version.id}/publish`);

  const { context, page } = await loggedIn(tenant.id);
  await page.getByRole('combobox', { name: 'Tenant' }).waitFor();

  // 1. The resource request: every field the API takes, submitted, listed with its state.
  const project = `store-${suffix}`;
  await open(page, 'Request resources', 'Resource requests');
  await page.getByLabel('Project (new or existing, DNS name)').fill(project);
  await page.getByLabel('Application', { exact: true }).fill('storefront');
  await page.getByLabel('E-mail').fill('ops@shop.example');
  await page.getByLabel('Phone').fill('+86 10 1234 5678');
  await pick(page, 'Data centre', 'dc1');
  await pick(page, 'Spec', spec.display_name);
  await page.getByLabel('Count', { exact: true }).fill('2');
  await page.getByLabel('Purpose').fill('the new storefront');
  await accessible(page, 'resource request form');
  await page.getByRole('button', { name: 'Submit the request' }).click();
  await page.getByText(`Submitted the request for ${project}`).waitFor();
  const requestRow = page.getByRole('row').filter({ hasText: project });
  await requestRow.getByText('submitted').waitFor();
  await accessible(page, 'resource requests');
  await photograph(page, '07-resource-request');
  const filed = await admin('GET', `/api/v1/requests?tenant_id=${tenant.id}`);
  assert.equal(filed.items.length, 1);
  assert.equal(filed.items[0].state, 'submitted');
  assert.equal(filed.items[0].form.project_name, project);
  assert.equal(filed.items[0].form.count, 2);
  assert.equal(filed.items[0].form.spec_id, spec.id);
  assert.equal(filed.items[0].form.data_centre, 'dc1');
  // Approved and provisioned, it becomes the project, its partition and quota.
  await admin('POST', `/api/v1/requests/${filed.items[0].id}/approve`, { reason: '' });
  await admin('POST', `/api/v1/requests/${filed.items[0].id}/provision`, { clusters: ['dc1-prod'] });

  // 2. Projects and partitions, with the quota the request brought.
  await open(page, 'Projects and partitions');
  const projectRow = page.getByRole('row').filter({ hasText: project });
  await projectRow.getByText(/requests\.cpu: \S+ \/ /).waitFor();
  await projectRow.getByRole('button', { name: /expand/i }).click();
  await page.getByRole('cell', { name: 'dc1-prod', exact: true }).waitFor();
  await accessible(page, 'projects');
  await photograph(page, '08-projects');

  // 3. Members and group bindings: an LDAP group gets a role.
  await open(page, 'Members and groups', 'Members and group bindings');
  await page.getByRole('button', { name: 'Bind a group' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Group DN (LDAP) or group name (OIDC)').fill('cn=shop-ops,ou=groups,dc=corp,dc=example');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('cell', { name: /cn=shop-ops/i }).waitFor();
  await accessible(page, 'members');
  await photograph(page, '09-members');

  // 4. An API token: its secret is shown once, works, and is gone from the page after.
  await open(page, 'API tokens');
  await page.getByRole('button', { name: 'New token' }).click();
  await page.getByRole('dialog').getByLabel('Name').fill(`ci-${suffix}`);
  await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
  const secretBox = page.getByTestId('token-secret');
  await secretBox.waitFor();
  const secret = (await secretBox.innerText()).trim();
  assert.ok(secret.length >= 20, `a secret: ${secret}`);
  await accessible(page, 'token secret');
  await photograph(page, '10-token-secret');
  const withToken = await fetch(`${url}/api/v1/tenants/${tenant.id}/projects`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(withToken.status, 200, await withToken.text());
  await page.getByRole('button', { name: 'I have copied it' }).click();
  await secretBox.waitFor({ state: 'detached' });
  await page.getByRole('row').filter({ hasText: `ci-${suffix}` }).getByText('active').waitFor();
  assert.ok(!(await page.content()).includes(secret), 'the secret is not on the page once the dialog is closed');
  await accessible(page, 'tokens');
  await photograph(page, '11-tokens');

  // 5. The catalog, the template's page, and the editor showing the API's validation at the field.
  await open(page, 'Template catalog');
  await page.getByRole('link', { name: template.name }).click();
  await page.getByRole('heading', { name: template.name }).waitFor();
  await page.getByRole('button', { name: 'New version' }).click();
  await page.getByLabel('Version', { exact: true }).fill('1.1.0');
  const broken = { ...version.spec, services: [{ ...version.spec.services[0], name: 'Not A Label' }] };
  await page.getByLabel('Spec (JSON)').fill(JSON.stringify(broken, null, 2));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.ant-form-item-has-error').filter({ hasText: /services\[0\]\.name/ }).waitFor();
  await accessible(page, 'template editor');
  await photograph(page, '12-template-editor');
  await page.getByRole('button', { name: 'Cancel' }).click();

  // 6. The deploy wizard: version -> parameters from the schema -> placement -> strategy.
  await page.getByRole('row').filter({ hasText: '1.0.0' }).getByRole('link', { name: 'Deploy' }).click();
  await page.getByRole('heading', { name: 'Deploy an application' }).waitFor();
  await page.getByLabel('Application name').fill(`front-${suffix}`.slice(0, 40));
  await pick(page, 'Project', project);
  await accessible(page, 'deploy: version');
  await page.getByRole('button', { name: 'Next' }).click();
  const tag = page.getByLabel(/^tag \(string\)/);
  await tag.waitFor();
  // The schema's required parameter is asked for before going on.
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('Enter the tag').waitFor();
  await tag.fill('1.4');
  await accessible(page, 'deploy: parameters');
  await photograph(page, '13-deploy-parameters');
  await page.getByRole('button', { name: 'Next' }).click();
  await pick(page, 'Clusters', 'dc1-prod', true);
  await page.keyboard.press('Escape');
  await dropdownClosed(page);
  await page.getByLabel('auto-failover').check();
  await accessible(page, 'deploy: placement');
  await page.getByRole('button', { name: 'Next' }).click();
  await pick(page, 'Strategy', 'canary');
  await page.getByLabel('Canary steps (%)').waitFor();
  await accessible(page, 'deploy: strategy');
  await photograph(page, '14-deploy-strategy');
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
  const appName = `front-${suffix}`.slice(0, 40);
  await page.getByRole('heading', { name: appName }).waitFor();
  const appId = page.url().split('/').pop();
  const app = await admin('GET', `/api/v1/applications/${appId}`);
  assert.equal(app.name, appName);
  const release = app.latest_release;
  assert.equal(release.strategy.type, 'canary', JSON.stringify(release.strategy));
  assert.deepEqual(release.strategy.steps, [5, 25, 50, 100]);
  assert.deepEqual(release.parameters, { tag: '1.4', replicas: 1 });
  assert.equal(release.placement.dr_tier, 'auto-failover', JSON.stringify(release.placement));
  assert.deepEqual(release.placement.explicit.map((c) => c.cluster), ['dc1-prod']);

  // 7. The tenant's audit shows what was just done.
  await open(page, 'Audit');
  await page.getByRole('cell', { name: /POST \/api\/v1\/tenants\// }).first().waitFor();
  await accessible(page, 'audit');
  await photograph(page, '15-audit');

  // The portal's screens in Chinese too.
  await page.locator('.ant-segmented-item', { hasText: '简体中文' }).click();
  await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: '申请资源' }).click();
  await page.getByRole('heading', { name: '资源申请', level: 2 }).waitFor();
  await photograph(page, '16-resource-requests-zh');
  await context.close();
});
