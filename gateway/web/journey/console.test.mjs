// The config center, images, pipelines and admin console screens in a real
// browser against a platform scripts/web-journey started: the break-glass
// administrator creates a config set, edits its draft (a bad yaml item shows
// the gateway's problem), publishes, sees the release and its diff in the
// history, rolls back, sees the effective configuration, then visits images,
// pipelines and each admin screen (a quota edited, the audit filtered and
// exported as CSV). Each screen is checked with axe and photographed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { accessible, admin, chromiumPath, logInAsAdmin, photograph, settled, url } from './browser.mjs';

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
});

/** The open dialog (Ant Design keeps closed ones in the page, hidden). */
const dialog = (page) => page.getByRole('dialog').filter({ visible: true });

/** Clicks `button`, which opens a dialog, and waits until the dialog has zoomed in (a click on it before may be lost). */
async function openDialog(page, button) {
  await button.click();
  await dialog(page).waitFor();
  await settled(page);
}

async function screen(page, link, heading, name) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: heading }).waitFor();
  await page.locator('.ant-table-tbody, .ant-empty').first().waitFor();
  await accessible(page, name);
  await photograph(page, name);
}

test('the config center publishes a draft and shows the release, its diff and the effective configuration; the other screens answer', async () => {
  const suffix = Date.now().toString(36);
  const tenant = await admin('POST', '/api/v1/tenants', { name: `shop-${suffix}`, display_name: `Shop ${suffix}` });

  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  try {
    await journey(page, tenant, suffix);
  } catch (e) {
    // What the screen showed when it went wrong.
    await photograph(page, 'console-failure').catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
});

async function journey(page, tenant, suffix) {
  await logInAsAdmin(page);
  // The local administrator is the break-glass account, and the shell says so.
  await page.getByText('Break-glass administrator').waitFor();

  // Work in the new tenant, picked with the keyboard.
  await page.getByRole('combobox', { name: 'Tenant' }).focus();
  await page.keyboard.type(`Shop ${suffix}`);
  await page.keyboard.press('Enter');
  await page.getByTitle(`Shop ${suffix}`).first().waitFor();

  // Config center: empty, then a set of `shop`.
  await page.getByRole('link', { name: 'Config center' }).click();
  await page.getByRole('heading', { name: 'Config center' }).waitFor();
  await page.getByText('No config sets yet.').waitFor();
  await accessible(page, 'config sets');
  await photograph(page, '10-config-empty');
  await openDialog(page, page.getByRole('button', { name: 'New config set' }));
  await dialog(page).getByRole('textbox', { name: 'Application' }).fill('shop');
  await dialog(page).getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: 'Config of shop (base)' }).waitFor();
  await page.getByText('The draft has no items.').waitFor();

  // The draft: an item, then a bad yaml one, whose problem the gateway names.
  await openDialog(page, page.getByRole('button', { name: 'Add item' }));
  await dialog(page).getByRole('textbox', { name: 'Item' }).fill('app.properties');
  await dialog(page).getByRole('textbox', { name: 'Content' }).fill('pool=10\ntimeout=5s\n');
  await dialog(page).getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved app.properties in the draft').waitFor();
  await page.getByRole('region', { name: 'app.properties' }).getByText('Added').first().waitFor();

  await openDialog(page, page.getByRole('button', { name: 'Add item' }));
  await dialog(page).getByRole('textbox', { name: 'Item' }).fill('bad.yaml');
  // The selected value lies over the select's input: click through it.
  await dialog(page).getByRole('combobox', { name: 'Format' }).click({ force: true });
  await page.locator('.ant-select-item-option[title="yaml"]').click();
  await dialog(page).getByRole('textbox', { name: 'Content' }).fill('a: [1, 2\nb: }\n');
  await dialog(page).getByRole('button', { name: 'Save' }).click();
  const problem = dialog(page).locator('.ant-form-item-explain-error, .ant-alert-error').first();
  await problem.waitFor();
  const shown = await problem.textContent();
  assert.ok(shown && !shown.includes('[object Object]'), `the problem shown: ${shown}`);
  console.log(`a bad yaml item is refused with: ${shown}`);
  await dialog(page).getByRole('button', { name: 'Cancel' }).click();

  // Publish release 1.
  await openDialog(page, page.getByRole('button', { name: 'Publish', exact: true }).first());
  await dialog(page).getByRole('textbox', { name: 'Message' }).fill('defaults');
  await dialog(page).getByRole('button', { name: 'Publish', exact: true }).click();
  await page.getByText('Published release #1').waitFor();
  await page.getByText('Changes since release #1').waitFor();

  // Edit the draft: the diff against release 1 shows the key's change.
  await openDialog(page, page.getByRole('button', { name: 'Edit app.properties' }));
  await dialog(page).getByRole('textbox', { name: 'Content' }).fill('pool=50\ntimeout=5s\n');
  await dialog(page).getByRole('button', { name: 'Save' }).click();
  const change = page.getByRole('region', { name: 'app.properties' });
  await change.getByRole('cell', { name: 'pool' }).waitFor();
  await change.getByRole('cell', { name: '10', exact: true }).waitFor();
  await change.getByRole('cell', { name: '50', exact: true }).waitFor();
  await accessible(page, 'config draft');
  await photograph(page, '11-config-draft');

  await openDialog(page, page.getByRole('button', { name: 'Publish', exact: true }).first());
  await dialog(page).getByRole('textbox', { name: 'Message' }).fill('bigger pool');
  await dialog(page).getByRole('button', { name: 'Publish', exact: true }).click();
  await page.getByText('Published release #2').waitFor();

  // The history has both releases; the diff shows 1 -> 2.
  await page.getByRole('tab', { name: 'Releases', exact: true }).click();
  const history = page.getByRole('tabpanel', { name: 'Releases', exact: true });
  await history.getByRole('row').filter({ hasText: 'bigger pool' }).waitFor();
  await history.getByRole('row').filter({ hasText: 'defaults' }).waitFor();
  await history.getByRole('region', { name: 'app.properties' }).getByRole('cell', { name: '50', exact: true }).waitFor();
  await accessible(page, 'config releases');
  await photograph(page, '12-config-releases');

  // Roll back to 1: a third release restoring it.
  await openDialog(page, history.getByRole('row').filter({ hasText: 'defaults' }).getByRole('button', { name: 'Roll back to #1' }));
  await dialog(page).getByRole('textbox', { name: 'Message' }).fill('back to 10');
  await dialog(page).getByRole('button', { name: 'Roll back', exact: true }).click();
  await page.getByText('Release #3 restores #1').waitFor();
  await history.getByRole('row').filter({ hasText: 'back to 10' }).waitFor();

  // The effective configuration: each key with where it comes from.
  await page.getByRole('tab', { name: 'Effective configuration' }).click();
  const effective = page.getByRole('tabpanel', { name: 'Effective configuration' });
  const pool = effective.getByRole('row').filter({ hasText: 'pool' });
  await pool.waitFor();
  assert.match((await pool.textContent()) ?? '', /10.*@3/);
  await accessible(page, 'config effective');
  await photograph(page, '13-config-effective');

  await page.getByRole('tab', { name: 'Gray releases' }).click();
  await page.getByText('No gray releases.').waitFor();
  await accessible(page, 'config gray');
  await page.getByRole('tab', { name: 'Instances' }).click();
  await page.getByText('No instance watches this set yet.').waitFor();
  await accessible(page, 'config instances');

  const [set] = (await admin('GET', `/api/v1/config-sets?tenant_id=${tenant.id}`)).items;
  assert.equal(set.latest_release, 3);

  // Images: repositories, replication, triggers.
  await screen(page, 'Images', 'Images', '20-images');
  await page.getByText('No repositories yet.').waitFor();
  await page.getByRole('tab', { name: 'Replication' }).click();
  await page.getByText('No replication rules.').waitFor();
  await accessible(page, 'images replication');
  await page.getByRole('tab', { name: 'Image triggers' }).click();
  await page.getByText('Pick an application to see').waitFor();
  await accessible(page, 'images triggers');

  // Pipelines.
  await screen(page, 'Pipelines', 'Pipelines', '30-pipelines');
  await page.getByText('No pipelines yet.').waitFor();
  await page.getByText('No runs yet.').waitFor();

  // Admin: tenants and a quota, with a bad line refused at the field.
  await screen(page, 'Tenants and quotas', 'Tenants and quotas', '40-admin-tenants');
  await openDialog(page, page.getByRole('button', { name: `Quota of shop-${suffix}` }));
  const total = dialog(page).getByRole('textbox', { name: 'Tenant total' });
  await total.fill('requests.cpu');
  await dialog(page).getByRole('button', { name: 'Save quota' }).click();
  await dialog(page).getByText('Line 1 is not in the form shown below.').waitFor();
  await total.fill('requests.cpu=16\nrequests.memory=64Gi');
  await accessible(page, 'tenant quota');
  await photograph(page, '41-admin-quota');
  await dialog(page).getByRole('button', { name: 'Save quota' }).click();
  await page.getByText(`Saved the quota of shop-${suffix}`).waitFor();
  const usage = await admin('GET', `/api/v1/tenants/${tenant.id}/usage`);
  const tenantScope = usage.scopes.find((s) => s.level === 'tenant');
  assert.deepEqual(
    Object.fromEntries(tenantScope.lines.map((l) => [l.resource, l.hard])),
    { 'requests.cpu': '16', 'requests.memory': '64Gi' },
  );

  await screen(page, 'Failovers', 'Failovers', '42-admin-failovers');
  await screen(page, 'Registries and replication', 'Registries and replication', '43-admin-registries');
  await screen(page, 'Runners', 'Runners', '44-admin-runners');

  // Audit: the config writes above are there; filtered and exported.
  await screen(page, 'Platform audit', 'Platform audit', '45-admin-audit');
  await page.getByRole('textbox', { name: 'Action starts with' }).fill('POST /api/v1/config-sets');
  await page.getByRole('button', { name: 'Apply' }).click();
  const published = page.getByRole('row').filter({ hasText: '/releases' }).first();
  await published.waitFor();
  const href = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
  assert.ok(href?.includes('format=csv') && href.includes('action='), href ?? '');
  const csv = await page.request.get(`${url}${href}`);
  assert.equal(csv.status(), 200);
  assert.match(csv.headers()['content-type'], /text\/csv/);
  const body = await csv.text();
  assert.match(body.split('\n')[0], /^id,at,actor/);
  assert.ok(body.includes('/releases'), 'the CSV has the filtered records');
  await photograph(page, '46-admin-audit-filtered');
}
