// What the browser journeys share: the platform's API as the bootstrap
// administrator, the axe check and screenshots.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { AxeBuilder } from '@axe-core/playwright';

export const url = process.env.PORTAL_URL;
export const adminToken = process.env.PORTAL_ADMIN_TOKEN;
export const adminPassword = process.env.PORTAL_ADMIN_PASSWORD;
export const artifacts = process.env.PORTAL_ARTIFACTS ?? 'journey-artifacts';
export const chromiumPath = process.env.PORTAL_CHROMIUM ?? '/usr/bin/chromium';

assert.ok(url && adminToken && adminPassword, 'run through scripts/web-journey (PORTAL_URL, PORTAL_ADMIN_TOKEN, PORTAL_ADMIN_PASSWORD)');
mkdirSync(artifacts, { recursive: true });

/** The API as the bootstrap administrator, to set up what the tenant side would have done. */
export async function admin(method, path, body) {
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

/** Until no finite animation runs (a dialog zooming in, a toast fading, a button's colour changing). */
export async function settled(page) {
  await page
    .waitForFunction(
      () =>
        document
          .getAnimations()
          .every((a) => a.playState !== 'running' || a.effect?.getComputedTiming().endTime === Infinity),
      null,
      { timeout: 10_000 },
    )
    .catch(() => {});
}

/** No serious or critical accessibility violation on the screen as it is. */
export async function accessible(page, screen) {
  // Toasts, dialogs and fields fade in and out: axe would measure their
  // contrast mid-animation, at partial opacity, and report what no reader
  // sees. So it checks once no finite animation runs. The pointer left over
  // a just-clicked button shows its lighter hover colour; it moves away
  // first, so the button's transition back is among the animations waited for.
  await page.mouse.move(0, 0);
  await settled(page);
  // Toasts (.ant-message) and a form's help on its way out
  // (.ant-form-show-help-item-leave) are left out: they fade while axe reads
  // them (excluded by the element, as axe's selectors seldom name the class).
  const results = await new AxeBuilder({ page })
    .exclude('.ant-message')
    .exclude('.ant-form-show-help-item-leave')
    .analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const described = bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(described, [], `${screen}: accessibility violations`);
}

export async function photograph(page, name) {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}

/** Logs in as the local (break-glass) administrator from the login page. */
export async function logInAsAdmin(page) {
  await page.goto(`${url}/`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
}

/** Picks `option` in the Ant Design select labelled `label` inside the screen (the header has its own pickers). */
export async function pick(page, label, option, multiple = false) {
  // Ant Design puts an aria-label on the select's box and its input alike: the input is the control.
  // The chosen value's text lies over the input of a select without search: click through it.
  await page.getByRole('main').getByLabel(label, { exact: true }).and(page.locator('input')).click({ force: true });
  await page.locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option', { hasText: option }).first().click();
  if (!multiple) await dropdownClosed(page);
}

/** Until no select's list is on screen (axe would check one still fading out). */
export async function dropdownClosed(page) {
  await page.locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden)').first().waitFor({ state: 'hidden' });
}

/** Polls `probe` until it returns something truthy (the platform's state, not the page's). */
export async function until(what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
