// What few people open is a WebAssembly module of its own (`cargo leptos
// --split`), fetched the first time one of its parts is: the settings panel,
// the message editor and the usage page. The chat page becomes interactive
// without it. A part that cannot be fetched says so in its place, and
// opening it again tries again.

import { test, expect, openChat, sendMessage, failToFetch, holdFetches, wasmFetchedBy } from './support';

const PARTS = /\/pkg\/split_on_demand[^/]*\.wasm$/;
/** The modules opening a part may fetch: its own, and chunks it shares. */
const PARTS_AND_CHUNKS = /\/pkg\/(split_on_demand|chunk_\d+)[^/]*\.wasm$/;

test('settings and the editor are fetched when one is first opened, and work', async ({ page }) => {
  const modules = wasmFetchedBy(page);
  const ui = await openChat(page);
  await sendMessage(page, 'Hello there [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(modules.filter((m) => PARTS.test(m)), 'nothing fetched before it is opened').toEqual([]);

  const toggle = page.locator('button.settings-toggle');
  const before = modules.length;
  await toggle.click();
  const panel = page.locator('section.settings-panel');
  await expect(panel).toBeVisible();
  const fetched = modules.slice(before);
  expect(fetched.filter((m) => PARTS.test(m))).toHaveLength(1);
  for (const module of fetched) expect(module).toMatch(PARTS_AND_CHUNKS);
  await toggle.click();
  await expect(panel).toHaveCount(0);
  // Opened again: already here.
  await toggle.click();
  await expect(panel).toBeVisible();

  const user = ui.users.first();
  await user.hover();
  await user.locator('button.edit-message').click();
  const editor = user.locator('form.edit-form textarea');
  await expect(editor).toHaveValue('Hello there [sim tokens=3]');
  await expect(editor).toBeFocused();
  expect(modules, 'the editor came with the settings').toHaveLength(before + fetched.length);
});

test('pointing at Settings starts fetching the module, so that a click shows it at once', async ({ page }) => {
  const modules = wasmFetchedBy(page);
  await openChat(page);
  const toggle = page.locator('button.settings-toggle');
  const fetched = page.waitForResponse((response) => PARTS.test(new URL(response.url()).pathname));
  await toggle.hover();
  expect((await fetched).ok()).toBe(true);
  const before = modules.length;
  await toggle.click();
  await expect(page.locator('section.settings-panel')).toBeVisible();
  expect(modules, 'nothing more to fetch').toHaveLength(before);
});

test('a part on a slow network says it is loading, then shows', async ({ page }) => {
  const release = await holdFetches(page, PARTS);
  await openChat(page);
  await page.locator('button.settings-toggle').click();
  await expect(page.getByRole('status').filter({ hasText: 'Loading…' })).toBeVisible();
  release();
  await expect(page.locator('section.settings-panel')).toBeVisible();
  await expect(page.locator('.part-loading')).toHaveCount(0);
});

test('a part that cannot be fetched says so, and opening it again tries again', async ({ page }) => {
  await failToFetch(page, PARTS);
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
  await page.unroute(PARTS);
  await toggle.click();
  await expect(page.locator('.part-failed')).toHaveCount(1);
  await toggle.click();
  await expect(page.locator('section.settings-panel')).toBeVisible();
});

test('a part whose module fails while the chunk it shares is still loading says so, and raises no error', async ({ page }) => {
  // The split loader starts a module's fetch while it waits for the chunks
  // the module shares: the failure comes first, with nothing yet to catch
  // it. The page's fixture fails the test on any uncaught error.
  const releaseChunk = await holdFetches(page, /\/pkg\/chunk_\d+[^/]*\.wasm$/);
  let moduleFailed = () => {};
  const failed = new Promise<void>((resolve) => (moduleFailed = resolve));
  await page.route(PARTS, async (route) => {
    await route.abort();
    moduleFailed();
  });
  await openChat(page);
  await page.locator('button.settings-toggle').click();
  await failed;
  releaseChunk();
  await expect(page.locator('.part-failed')).toHaveText(
    'This could not be loaded. Check your connection, then close it and open it again.',
  );
  await expect(page.locator('.load-failed')).toHaveCount(0);
});

test('the usage page opened by address waits for its module, then is interactive', async ({ page }) => {
  const modules = wasmFetchedBy(page);
  const ui = await openChat(page);
  await sendMessage(page, 'Count me [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });

  await page.goto('/usage');
  await expect(page.locator('.usage-period')).toHaveCount(2);
  // Hydrated: its Back link is the router's, which keeps the page loaded.
  await expect.poll(() => modules.some((m) => PARTS.test(m))).toBe(true);
  await page.evaluate(() => ((window as unknown as { __stayed: boolean }).__stayed = true));
  await page.getByRole('link', { name: 'Back to chat' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(ui.input).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __stayed?: boolean }).__stayed)).toBe(true);
});

test('a usage page whose module cannot be fetched says so; the chat still works', async ({ page }) => {
  await failToFetch(page, PARTS);
  const ui = await openChat(page);
  await page.getByRole('link', { name: 'Usage' }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await expect(page.getByRole('alert')).toHaveText(
    'The usage page could not be loaded. Check your connection, then reload the page.',
  );
  await page.getByRole('link', { name: 'Back to chat' }).click();
  await sendMessage(page, 'Still here? [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
});

test('a usage page loaded by address whose module cannot be fetched says so, and keeps its figures', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Count me [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });

  await failToFetch(page, PARTS);
  await page.goto('/usage');
  await expect(page.getByRole('alert')).toHaveText(
    'The usage page could not be loaded. Check your connection, then reload the page.',
  );
  await expect(page.locator('.usage-period')).toHaveCount(2);
  // Not hydrated: Back is a plain link, and the chat loads anew and works.
  await page.getByRole('link', { name: 'Back to chat' }).click();
  await expect(page).toHaveURL(/\/$/);
  await page.unroute(PARTS);
  await sendMessage(page, 'Still here? [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
});
