import { test, expect, openChat, sendMessage, fetchAnswer, textOf, selectedModel } from './support';

test('Korean text and emoji (with a skin-tone modifier) survive the round trip', async ({ page, request }) => {
  const ui = await openChat(page);
  const message = '안녕하세요 👋🏽 세계 🌏';
  await sendMessage(page, message);

  const user = ui.users.first();
  await expect(user.locator('.text')).toHaveText(message);
  expect(await textOf(user)).toBe(message);

  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  const text = await textOf(answer);
  expect(text).toContain(`You said: "${message}"`);
  // No replacement characters from a split multi-byte sequence.
  expect(text).not.toContain('\uFFFD');

  const expected = await fetchAnswer(request, message, { modelId: await selectedModel(page) });
  expect(text).toBe(expected.text);
});
