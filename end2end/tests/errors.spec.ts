import { test, expect, openChat, sendMessage, fetchAnswer, textOf, selectedModel } from './support';

test('an error in the middle of the answer is shown and the partial text kept', async ({ page, request }) => {
  const ui = await openChat(page);
  const message = 'Fail halfway. [sim fail=model_stream_error after=5 delay_ms=20]';
  await sendMessage(page, message);

  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'error', { timeout: 15_000 });
  const alert = answer.locator('.state.error');
  await expect(alert).toBeVisible();
  await expect(alert).toHaveAttribute('role', 'alert');
  const shown = (await alert.textContent())?.trim() ?? '';
  // A sentence for people, not an exception name or a JSON blob.
  expect(shown).toMatch(/^[A-Z].*\w{3,} \w{3,}.*[.!]$/);
  expect(shown).not.toMatch(/Exception|[{}]|http_\d|undefined|null/);

  // Exactly the five pieces that arrived before the failure.
  const partial = await textOf(answer);
  expect(partial.split(/\s+/).filter(Boolean)).toHaveLength(5);
  const expected = await fetchAnswer(request, message, { modelId: await selectedModel(page) });
  expect(expected.events.filter((e) => e.event === 'delta')).toHaveLength(5);
  expect(expected.events.at(-1)?.event).toBe('error');
  expect(partial).toBe(expected.text);
  expect(shown).toBe(expected.events.at(-1)?.data.message);

  // The composer is usable again.
  await expect(ui.send).toBeVisible();
  await expect(ui.stop).toHaveCount(0);
});

test('an error before the stream starts is shown with a hint to try again', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Too busy. [sim fail=throttling after=0]');

  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'error', { timeout: 15_000 });
  const alert = answer.locator('.state.error');
  await expect(alert).toBeVisible();
  await expect(alert).toHaveText(/try again/i);
  expect(await textOf(answer)).toBe('');
  await expect(ui.send).toBeVisible();
});

test('a message over the length limit is blocked in the browser', async ({ page }) => {
  const ui = await openChat(page);
  const config = JSON.parse((await page.locator('#page-config').textContent()) ?? '{}');
  const max: number = config.max_message_chars;
  expect(Number.isInteger(max) && max > 0).toBe(true);

  const requests: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/chat')) requests.push(r.url());
  });

  await ui.input.fill('x'.repeat(max + 1));
  const limit = page.locator('.limit');
  await expect(limit).toBeVisible();
  await expect(limit).toHaveAttribute('role', 'alert');
  await expect(limit).toContainText(`${max + 1} / ${max}`);
  await expect(ui.send).toBeDisabled();

  await ui.input.press('Enter');
  await ui.send.click({ force: true }).catch(() => {});
  // Give a (wrong) send the time to render a turn or start a request.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForTimeout(200);
  await expect(ui.turns).toHaveCount(0);
  expect(requests).toEqual([]);
  await expect(ui.input).toHaveValue('x'.repeat(max + 1));

  // Exactly at the limit is fine again.
  await ui.input.fill('x'.repeat(max));
  await expect(limit).toHaveCount(0);
  await expect(ui.send).toBeEnabled();
});
