// The Markdown renderer is a WebAssembly module of its own (`cargo leptos
// --split`): hydrating a page does not need it (the server rendered every
// stored answer), so it is fetched once the page is interactive. An answer
// that arrives before it shows as plain text until it does; a page that
// cannot fetch it shows every answer as plain text and says so.

import { test, expect, openChat, sendMessage, sidebar, fetchAnswer, failToFetch, holdFetches, wasmFetchedBy } from './support';

const RENDERER = /\/pkg\/split_markdown[^/]*\.wasm$/;
const MESSAGE = 'Some **bold** text';

test('the renderer is fetched after the main module, and formats answers', async ({ page }) => {
  const modules = wasmFetchedBy(page);
  const renderer = page.waitForResponse((response) => RENDERER.test(new URL(response.url()).pathname));
  const ui = await openChat(page);
  expect((await renderer).ok()).toBe(true);
  expect(modules[0]).toMatch(/\/pkg\/bedrock-chat[^/]*\.wasm$/);
  // Then the renderer, with any chunk it shares with other split modules;
  // not the parts fetched when opened (`on-demand.spec.ts`).
  for (const module of modules.slice(1)) expect(module).toMatch(/\/pkg\/(split_markdown|chunk_\d+)[^/]*\.wasm$/);

  await sendMessage(page, `${MESSAGE}\n[sim echo]`);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(answer.locator('.md-done strong')).toHaveText('bold');
  await expect(answer.locator('.unformatted')).toHaveCount(0);
});

test('an answer that streams before the renderer arrives shows as text, then formatted', async ({ page }) => {
  const release = await holdFetches(page, RENDERER);
  const ui = await openChat(page);
  // In pieces of 3 characters, 40 ms apart: drawn over several frames.
  await sendMessage(page, `${MESSAGE}\n[sim echo chunk=3 delay_ms=40]`);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  // Nothing is hidden while the renderer is on its way.
  await expect(answer.locator('.md-tail.unformatted')).toHaveText(MESSAGE);
  await expect(answer.locator('strong')).toHaveCount(0);

  release();
  await expect(answer.locator('.md-done strong')).toHaveText('bold');
  await expect(answer.locator('.md-tail')).toBeEmpty();
  await expect(answer.locator('.unformatted')).toHaveCount(0);
  await expect(page.locator('.formatting-failed')).toHaveCount(0);
});

test('if the renderer cannot be fetched, answers show as plain text and the page says so', async ({ page }) => {
  await failToFetch(page, RENDERER);
  // A stored conversation, to open once the page is up.
  const earlier = await fetchAnswer(page.request, 'An *earlier* answer\n[sim echo]');
  expect(earlier.status).toBe(200);

  const ui = await openChat(page);
  await expect(page.locator('.formatting-failed')).toContainText('Formatting could not be loaded');

  // A stored answer opened now: its text, unformatted.
  await sidebar(page).item(earlier.conversationId!).locator('a.conversation-link').click();
  const stored = ui.answers.first();
  await expect(stored.locator('.md-tail.unformatted')).toHaveText('An *earlier* answer');
  await expect(stored.locator('em')).toHaveCount(0);

  // A new answer streams in as plain text, and is complete.
  await sendMessage(page, `${MESSAGE}\n[sim echo]`);
  const answer = ui.answers.nth(1);
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(answer.locator('.md-tail.unformatted')).toHaveText(MESSAGE);
  await expect(answer.locator('strong')).toHaveCount(0);

  // A reload asks again; the server renders what is stored either way.
  await page.unroute(RENDERER);
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.answers.nth(1).locator('.md-done strong')).toHaveText('bold');
  await expect(page.locator('.formatting-failed')).toHaveCount(0);
});
