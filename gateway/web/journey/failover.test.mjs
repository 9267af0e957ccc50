// The DR journey in a real browser against a platform scripts/web-journey
// started: a two-service application is deployed with the wizard to dc1 and
// dc2 with the auto-failover tier; the administrator takes dc1 down the way a
// DR drill does (`paas up`'s kubesim fault-injection endpoint, printed at
// start-up, $PORTAL_FAULT_DC1), and without reloading the console shows the
// cluster lost, the failovers with their timed steps reaching Available, and
// the application's replicas Available in dc2; dc1 then recovers, and the
// same screens show it Ready again and the automatic failback putting the
// replicas back. Each screen is checked with axe and photographed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { accessible, admin, adminPassword, chromiumPath, dropdownClosed, photograph, pick, until, url } from './browser.mjs';

const faultUrl = process.env.PORTAL_FAULT_DC1;
/** How long the platform may take to notice a lost cluster, move replicas and bring them back. */
const DR_TIMEOUT = 90_000;
/** Cells of a row of the Failovers table (the first holds the expand button). */
const APPLICATION = 1;
const STATE = 6;

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
});

/** The text of cell `index` of each row `rows` finds. */
function cells(rows, index) {
  return rows.evaluateAll((trs, i) => trs.map((tr) => tr.querySelectorAll('td')[i]?.textContent?.trim() ?? ''), index);
}

/** Sets dc1-prod's simulated fault (`down`, `recover`) through kubesim's fault-injection endpoint. */
async function fault(kind) {
  const response = await fetch(faultUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ fault: kind }),
  });
  assert.ok(response.ok, `fault ${kind}: ${response.status} ${await response.text()}`);
}

async function condition(cluster) {
  return (await admin('GET', `/api/v1/clusters/${cluster}`)).condition.status;
}

/** The menu link to a screen, and its heading. */
async function open(page, link) {
  await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: link, level: 2 }).waitFor();
}

/**
 * The text of `service`'s cell in `cluster`'s column of the application's
 * services-by-cluster grid ('' while the cluster has no column).
 */
async function cellText(page, service, cluster) {
  const grid = page.locator('.ant-card').filter({ hasText: 'Services by cluster' }).locator('table').first();
  return grid.evaluate(
    (table, [service, cluster]) => {
      const headers = [...table.querySelectorAll('thead th')].map((th) => th.textContent?.trim());
      const column = headers.indexOf(cluster);
      const row = [...table.querySelectorAll('tbody tr.ant-table-row')].find((tr) =>
        tr.querySelector('td')?.textContent?.trim().startsWith(service),
      );
      return column < 0 || !row ? '' : (row.querySelectorAll('td')[column]?.textContent ?? '');
    },
    [service, cluster],
  );
}

/** Until the grid shows each of `expected` ({service: {cluster: 'n/n ready'}}), as the page refreshes itself. */
async function grid(page, expected, what) {
  await until(what, async () => {
    for (const [service, byCluster] of Object.entries(expected)) {
      for (const [cluster, text] of Object.entries(byCluster)) {
        if (!(await cellText(page, service, cluster)).includes(text)) return false;
      }
    }
    return true;
  }, DR_TIMEOUT);
}

test('the admin takes dc1 down: the console shows the failover steps live, the application Available in dc2, then dc1 recovering', async () => {
  assert.ok(faultUrl, "run through scripts/web-journey (PORTAL_FAULT_DC1, dc1-prod's fault-injection endpoint)");
  const suffix = Date.now().toString(36);
  // What a provisioned request leaves: a quota and a project with a partition in each data centre.
  const tenant = await admin('POST', '/api/v1/tenants', { name: `travel-${suffix}`, display_name: `Travel ${suffix}` });
  await admin('PUT', `/api/v1/tenants/${tenant.id}/quota`, { hard: { 'requests.cpu': '8', 'requests.memory': '16Gi' } });
  const project = await admin('POST', `/api/v1/tenants/${tenant.id}/projects`, { name: `booking-${suffix}` });
  for (const [cluster, dc] of [['dc1-prod', 'dc1'], ['dc2-dr', 'dc2']]) {
    await admin('POST', `/api/v1/projects/${project.id}/partitions`, { cluster, data_centre: dc });
  }
  const container = (name) => ({
    name,
    image: `registry.example/${name}:\${tag}`,
    resources: { cpu_request: '100m', memory_request: '128Mi' },
    ports: [{ name: 'http', container_port: 8080 }],
  });
  const template = await admin('POST', '/api/v1/templates', { tenant_id: tenant.id, name: `booking-${suffix}`, description: 'Booking' });
  const version = await admin('POST', `/api/v1/templates/${template.id}/versions`, {
    version: '1.0.0',
    spec: {
      parameters: [{ name: 'tag', type: 'string', required: true }],
      services: [
        { name: 'web', depends_on: ['api'], containers: [container('web')] },
        { name: 'api', containers: [container('api')] },
      ],
    },
  });
  await admin('POST', `/api/v1/template-versions/${version.id}/publish`);
  // Placement takes Ready clusters only; the monitor probes them from start-up.
  for (const cluster of ['dc1-prod', 'dc2-dr']) {
    await until(`${cluster} Ready`, async () => (await condition(cluster)) === 'Ready');
  }

  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1366, height: 900 } });
  await context.addInitScript((id) => localStorage.setItem('paas.tenant', id), tenant.id);
  const page = await context.newPage();
  try {
    await journey(page, template, version, project, suffix);
  } catch (e) {
    await photograph(page, 'failover-failure').catch(() => {});
    throw e;
  } finally {
    // dc1 comes back whatever happened, for whatever runs next.
    await fault('recover').catch(() => {});
    await context.close();
  }
});

async function journey(page, template, version, project, suffix) {
  await page.goto(`${url}/login`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();

  // The wizard: both data centres, two replicas in dc1 and one in dc2, auto-failover after 2 s.
  const name = `booking-${suffix}`;
  await page.goto(`${url}/deploy?template=${template.id}&version=${version.id}`);
  await page.getByRole('heading', { name: 'Deploy an application' }).waitFor();
  await page.getByLabel('Application name').fill(name);
  await pick(page, 'Project', project.name);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel(/^tag \(string\)/).fill('2.0');
  await page.getByRole('button', { name: 'Next' }).click();
  await pick(page, 'Clusters', 'dc1-prod', true);
  await page.locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option', { hasText: 'dc2-dr' }).click();
  await page.keyboard.press('Escape');
  await dropdownClosed(page);
  await page.getByRole('spinbutton', { name: 'Replicas: dc1-prod' }).fill('2');
  await page.getByRole('spinbutton', { name: 'Replicas: dc2-dr' }).fill('1');
  await page.getByLabel('auto-failover').check();
  await page.getByLabel('Tolerate a lost cluster for (seconds)').fill('2');
  await accessible(page, 'deploy: placement in two data centres');
  await photograph(page, '50-deploy-two-data-centres');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
  const appId = page.url().split('/').pop();
  await page.getByRole('heading', { name }).waitFor();

  // The application page follows the rollout by itself: both services ready in both data centres.
  const spread = { 'dc1-prod': '2/2 ready', 'dc2-dr': '1/1 ready' };
  await grid(page, { web: spread, api: spread }, 'both services ready in both data centres');
  await accessible(page, 'application in two data centres');
  await photograph(page, '51-application-two-data-centres');
  const app = await admin('GET', `/api/v1/applications/${appId}`);
  const bindings = app.services.map((s) => s.binding_id);
  assert.equal(bindings.length, 2, JSON.stringify(app.services));
  assert.equal(app.latest_release.placement.dr_tier, 'auto-failover', JSON.stringify(app.latest_release.placement));

  // From here on the page is never reloaded: a mark on the window would not survive one.
  await open(page, 'Clusters and data centres');
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  const dc1 = page.locator('.ant-table-row').filter({ has: page.getByRole('cell', { name: 'dc1-prod', exact: true }) });
  await dc1.getByText('Ready', { exact: true }).waitFor();

  // The DR drill, watched from the Failovers screen: dc1 goes off the network.
  await open(page, 'Failovers');
  const downAt = Date.now();
  await fault('down');
  // The failovers appear by themselves: one per service, from dc1-prod to dc2-dr, their steps timed,
  // each row naming the application and its service.
  const ours = page
    .locator('.ant-table-row')
    .filter({ hasText: `${name} · ${name}-` })
    .filter({ hasText: 'dc2-dr' })
    .filter({ hasText: 'failover' });
  await ours.first().waitFor({ timeout: DR_TIMEOUT });
  const noticed = Date.now() - downAt;
  const seen = new Set([(await ours.first().locator('td').nth(STATE).innerText()).trim()]);
  await ours.first().getByRole('button', { name: /expand/i }).click();
  const steps = page.locator('.ant-table-expanded-row').first();
  await steps.getByText(/^available in dc2-dr/).waitFor({ timeout: DR_TIMEOUT });
  await until('both failovers Available', async () => {
    const states = await cells(ours, STATE);
    states.forEach((s) => seen.add(s));
    return states.length === 2 && states.every((s) => s === 'Available');
  }, DR_TIMEOUT);
  const available = Date.now() - downAt;
  const named = await cells(ours, APPLICATION);
  assert.deepEqual(named.sort(), [`${name} · ${name}-api`, `${name} · ${name}-web`]);
  const timeline = (await steps.locator('.ant-timeline-item-content').allInnerTexts()).map((t) => t.split(' · ')[0]);
  assert.deepEqual(timeline.slice(0, 1), ['fault detected'], timeline.join('\n'));
  assert.match(timeline[1], /^opened: dc1-prod out of Ready/, timeline.join('\n'));
  assert.ok(timeline.some((s) => s.startsWith('placing:')), timeline.join('\n'));
  assert.ok(timeline.some((s) => s.startsWith('applied')), timeline.join('\n'));
  assert.equal(timeline.at(-1), 'available in dc2-dr', timeline.join('\n'));
  assert.ok(await page.evaluate(() => window.__notReloaded === true), 'the console was not reloaded');
  await accessible(page, 'failovers after dc1 was lost');
  await photograph(page, '53-failovers-available-in-dc2');
  const operations = (await admin('GET', '/api/v1/failovers?limit=100')).items.filter((f) => bindings.includes(f.binding_id));
  assert.deepEqual(
    operations.map((f) => [f.application, f.kind, f.trigger, f.from_cluster, f.to_clusters.join(), f.state]),
    [
      [name, 'failover', 'automatic', 'dc1-prod', 'dc2-dr', 'available'],
      [name, 'failover', 'automatic', 'dc1-prod', 'dc2-dr', 'available'],
    ],
  );

  // The clusters screen shows dc1 lost.
  await open(page, 'Clusters and data centres');
  await dc1.getByText(/^(NotReady|Unknown)$/).waitFor({ timeout: DR_TIMEOUT });
  await accessible(page, 'clusters with dc1 lost');
  await photograph(page, '52-clusters-dc1-lost');

  // The application: its replicas Available in dc2 (dc1's two moved there).
  await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: 'Applications', exact: true }).click();
  await page.getByRole('link', { name }).click();
  await page.getByRole('heading', { name }).waitFor();
  const moved = { 'dc2-dr': '3/3 ready' };
  await grid(page, { web: moved, api: moved }, "dc1's replicas ready in dc2");
  await accessible(page, 'application failed over to dc2');
  await photograph(page, '54-application-in-dc2');

  // dc1 recovers: the clusters screen shows it Ready, the failbacks put the replicas back.
  const recoverAt = Date.now();
  await fault('recover');
  await open(page, 'Clusters and data centres');
  await dc1.getByText('Ready', { exact: true }).waitFor({ timeout: DR_TIMEOUT });
  await photograph(page, '55-clusters-dc1-back');
  await open(page, 'Failovers');
  const back = page.locator('.ant-table-row').filter({ hasText: 'failback' }).filter({ hasText: 'dc1-prod' });
  await back.first().waitFor({ timeout: DR_TIMEOUT });
  await until('both failbacks Available', async () => {
    const states = await cells(back, STATE);
    return states.length === 2 && states.every((s) => s === 'Available');
  }, DR_TIMEOUT);
  const failedBack = Date.now() - recoverAt;
  await accessible(page, 'failovers after dc1 came back');
  await photograph(page, '56-failovers-failed-back');
  await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: 'Applications', exact: true }).click();
  await page.getByRole('link', { name }).click();
  await page.getByRole('heading', { name }).waitFor();
  await grid(page, { web: spread, api: spread }, 'the replicas back in dc1');
  await photograph(page, '57-application-back-in-dc1');
  assert.ok(await page.evaluate(() => window.__notReloaded === true), 'the console was not reloaded');
  console.log(
    `dc1 down: the Failovers screen showed the first failover after ${(noticed / 1000).toFixed(1)} s and both Available after ` +
      `${(available / 1000).toFixed(1)} s (states seen: ${[...seen].join(' -> ')}); back: failed back after ${(failedBack / 1000).toFixed(1)} s`,
  );
}
