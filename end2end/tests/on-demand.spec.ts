// The settings panel and the message editor are a WebAssembly module of their
// own (`cargo leptos --split`), fetched the first time one is opened: the
// page becomes interactive without them. One that cannot be fetched says so
// in its place, and opening it again tries again.

import { test, expect, openChat, sendMessage } from './support';

const PART = /\/pkg\/split_on_demand[^/]*\.wasm$/;

/** The paths of the WebAssembly modules `page` fetches from now on. */
function modulesOf(page: import('@playwright/test').Page): string[] {
  const modules: string[] = [];
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('.wasm')) modules.push(path);
  });
  return modules;
}

test('settings and the editor are fetched when one is first opened, and work', async ({ page }) => {
  const modules = modulesOf(page);
  const ui = await openChat(page);
  await sendMessage(page, 'Hello there [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(modules.filter((m) => PART.test(m)), 'nothing fetched before it is opened').toEqual([]);

  const toggle = page.locator('button.settings-toggle');
  const before = modules.length;
  await toggle.click();
  const panel = page.locator('section.settings-panel');
  await expect(panel).toBeVisible();
  // Their module alone: no chunk shared with another split module either.
  expect(modules.slice(before)).toEqual(['/pkg/split_on_demand.wasm']);
  await toggle.click();
  await expect(panel).toHaveCount(0);
  // Opened again: already here.
  await toggle.click();
  await expect(panel).toBeVisible();
  expect(modules).toHaveLength(before + 1);

  const user = ui.users.first();
  await user.hover();
  await user.locator('button.edit-message').click();
  const editor = user.locator('form.edit-form textarea');
  await expect(editor).toHaveValue('Hello there [sim tokens=3]');
  await expect(editor).toBeFocused();
  expect(modules, 'the editor came with the settings').toHaveLength(before + 1);
});

test('a part that cannot be fetched says so, and opening it again tries again', async ({ page }) => {
  await page.route(PART, (route) => route.abort());
  const ui = await openChat(page);
  await sendMessage(page, 'Hello there [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });

  const toggle = page.locator('button.settings-toggle');
  await toggle.click();
  await expect(page.locator('.part-failed')).toHaveText(
    'This could not be loaded. Check your connection, then close it and open it again.',
  );
  await expect(page.locator('section.settings-panel')).toHaveCount(0);
  // The page still works: the editor says the same, and a message is sent.
  const user = ui.users.first();
  await user.hover();
  await user.locator('button.edit-message').click();
  await expect(user.locator('.part-failed')).toBeVisible();
  await sendMessage(page, 'Still here? [sim tokens=3]');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });

  // The network is back: closing and opening again loads it.
  await page.unroute(PART);
  await toggle.click();
  await expect(page.locator('.part-failed')).toHaveCount(1);
  await toggle.click();
  await expect(page.locator('section.settings-panel')).toBeVisible();
});
