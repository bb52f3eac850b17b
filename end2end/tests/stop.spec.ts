import { test, expect, chat, openChat, sendMessage, textOf, type Page } from './support';

const LONG = 'Write at length. [sim tokens=500 delay_ms=30]';

async function startLongAnswer(page: Page) {
  const ui = await openChat(page);
  await sendMessage(page, LONG);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'streaming');
  // Wait for some text (500 tokens at 30 ms take about 15 s).
  await expect(answer.locator('.text')).toHaveText(/\S/);
  await expect(ui.stop).toBeVisible();
  return { ui, answer };
}

async function expectStoppedAndKept(page: Page) {
  const ui = chat(page);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'stopped', { timeout: 5_000 });
  await expect(answer.locator('.state.stopped')).toHaveText('Stopped');
  await expect(answer.locator('.state.streaming')).toHaveCount(0);
  await expect(ui.send).toBeVisible();
  await expect(ui.stop).toHaveCount(0);

  const kept = await textOf(answer);
  expect(kept.length).toBeGreaterThan(0);
  expect(kept.startsWith('Demo answer')).toBe(true);
  // Nothing more arrives after Stop.
  await page.waitForTimeout(1_000);
  expect(await textOf(answer)).toBe(kept);
  await expect(answer).toHaveAttribute('data-status', 'stopped');
  // Far from the 500 tokens the full answer has.
  expect(kept.split(/\s+/).filter(Boolean).length).toBeLessThan(400);
}

test('Stop ends the answer and keeps the partial text', async ({ page }) => {
  const { ui } = await startLongAnswer(page);
  await ui.stop.click();
  await expectStoppedAndKept(page);
});

test('Escape stops the answer too', async ({ page }) => {
  const { ui } = await startLongAnswer(page);
  await ui.input.focus();
  await page.keyboard.press('Escape');
  await expectStoppedAndKept(page);
});

test('Escape stops the answer wherever the focus is', async ({ page }) => {
  await startLongAnswer(page);
  // Focus away from the composer (a click on the transcript's background).
  await page.locator('header.topbar h1').click();
  await page.keyboard.press('Escape');
  await expectStoppedAndKept(page);
});
