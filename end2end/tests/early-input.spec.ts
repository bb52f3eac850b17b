// What a user does while the page is still loading its WebAssembly is not
// lost: a message typed and sent with Enter, a click on Send or Settings,
// and a model picked are all carried out once the page is interactive.
// The WASM is held back by the test until the input has been made.

import { test as plain, type Page } from '@playwright/test';
import { test, expect, chat, selectedModel } from './support';

/** Holds the WASM download until the returned function is called. */
async function holdTheApp(page: Page): Promise<() => void> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/pkg/*.wasm', async (route) => {
    await released;
    await route.continue();
  });
  return release;
}

async function openUnhydrated(page: Page) {
  const release = await holdTheApp(page);
  await page.goto('/', { waitUntil: 'domcontentloaded' });
  await expect(chat(page).input).toBeVisible();
  await expect(chat(page).main).not.toHaveAttribute('data-hydrated', 'true');
  return release;
}

test('a message sent with Enter before hydration is sent once the page is interactive', async ({ page }) => {
  const release = await openUnhydrated(page);
  const ui = chat(page);
  await ui.input.fill('Sent while loading [sim tokens=4]');
  await ui.input.press('Enter');
  // Nothing navigated away or reloaded the page meanwhile.
  expect(new URL(page.url()).pathname).toBe('/');
  release();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.users).toHaveCount(1);
  await expect(ui.users.first()).toContainText('Sent while loading');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
  await expect(ui.input).toHaveValue('');
  // A slow load is not a failed one.
  await expect(page.locator('.load-failed')).toHaveCount(0);
});

test('a click on Send before hydration is not lost, nor is the text typed', async ({ page }) => {
  const release = await openUnhydrated(page);
  const ui = chat(page);
  await ui.input.fill('Clicked while loading [sim tokens=4]');
  await expect(ui.send).toBeEnabled();
  await ui.send.click();
  await expect(ui.send).toHaveAttribute('data-queued', '');
  release();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.users.first()).toContainText('Clicked while loading');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
});

test('a model picked and Settings clicked before hydration take effect after it', async ({ page }) => {
  const release = await openUnhydrated(page);
  const picker = page.locator('select[aria-label="Model"]');
  const first = await picker.inputValue();
  const offered = await picker.locator('option').evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value));
  const other = offered.find((value) => value !== first)!;
  await picker.selectOption(other);
  await page.locator('button.settings-toggle').click();
  release();
  const ui = chat(page);
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('section.settings-panel')).toBeVisible();
  expect(await selectedModel(page)).toBe(other);
  // The page's own state has it, not only the picker: the model is asked.
  await ui.input.fill('Which model? [sim report]');
  await ui.input.press('Enter');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
  await expect(ui.answers.first()).toContainText(`model=${other}`);
});

// Without the error-watching fixture: a WASM that cannot load is an uncaught
// rejection in the page, which is the point here.
plain('when the app cannot load, the page says so instead of holding clicks', async ({ page }) => {
  await page.route('**/pkg/*.wasm', (route) => route.abort('failed'));
  await page.goto('/', { waitUntil: 'domcontentloaded' });
  const alert = page.getByRole('alert');
  await expect(alert).toHaveText('The page could not finish loading. Reload it to try again.');
  const ui = chat(page);
  await ui.input.fill('Nothing will send this');
  await ui.send.click();
  await expect(ui.send).not.toHaveAttribute('data-queued');
  await expect(ui.main).not.toHaveAttribute('data-hydrated', 'true');
});
