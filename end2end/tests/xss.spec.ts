import { test, expect, openChat, sendMessage, textOf } from './support';

test('markup in a message is shown as text, never run', async ({ page }) => {
  const ui = await openChat(page);
  const payload = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
  await sendMessage(page, payload);

  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });

  const userText = await textOf(ui.users.first());
  expect(userText).toBe(payload);
  const answerText = await textOf(answer);
  expect(answerText).toContain('<script>');
  expect(answerText).toContain(`You said: "${payload}"`);

  const transcript = page.locator('.transcript');
  await expect(transcript.locator('script')).toHaveCount(0);
  await expect(transcript.locator('img')).toHaveCount(0);
  // Had the <img> been parsed, its error handler would have run by now.
  await page.waitForLoadState('load');
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
});
