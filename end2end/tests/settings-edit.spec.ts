// Per-conversation settings, Regenerate and edit-and-resend. The simulator's
// `report` directive answers with what the request to Bedrock carried (model,
// system prompt, temperature, max tokens, message count), so these tests see
// what really reached the model.

import { test, expect, openChat, sendMessage, textOf, conversationIdOf, type Page } from './support';

const NOVA = 'us.amazon.nova-lite-v1:0';
const HAIKU = 'us.anthropic.claude-3-5-haiku-20241022-v1:0';

function settingsPanel(page: Page) {
  const panel = page.locator('section.settings-panel');
  return {
    toggle: page.locator('button.settings-toggle'),
    panel,
    prompt: panel.locator('textarea[name="system_prompt"]'),
    temperature: panel.locator('input[name="temperature"]'),
    maxTokens: panel.locator('input[name="max_tokens"]'),
    save: panel.locator('button.save-settings'),
    reset: panel.locator('button.reset-settings'),
    status: panel.locator('.settings-status'),
  };
}

test('the model, system prompt, temperature and max tokens reach the model and stay with the conversation', async ({
  page,
}) => {
  const ui = await openChat(page);
  const s = settingsPanel(page);
  await expect(s.panel).toHaveCount(0);
  await s.toggle.click();
  await expect(s.toggle).toHaveAttribute('aria-expanded', 'true');
  // Empty fields mean the server's defaults, which they show.
  await expect(s.prompt).toHaveAttribute('placeholder', /^Default: You are a helpful assistant/);
  await expect(s.temperature).toHaveAttribute('placeholder', 'Default: 0.7');

  // A new chat: the settings travel with its first message.
  await page.locator('select[aria-label="Model"]').selectOption(NOVA);
  await s.prompt.fill('You are a pirate.');
  await s.temperature.fill('0.3');
  await s.maxTokens.fill('200');
  await s.save.click();
  await expect(s.status).toContainText('Saved');
  await sendMessage(page, 'Who are you? [sim report]');
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(await textOf(answer)).toBe(
    `model=${NOVA} | system=You are a pirate. | temperature=0.30 | max_tokens=200 | messages=1`,
  );
  const id = conversationIdOf(page);

  // They are stored with the conversation: a reload shows them, and the
  // next answer uses them without the page sending them again.
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('select[aria-label="Model"]')).toHaveValue(NOVA);
  await s.toggle.click();
  await expect(s.prompt).toHaveValue('You are a pirate.');
  await expect(s.temperature).toHaveValue('0.3');
  await expect(s.maxTokens).toHaveValue('200');

  // Changing them in an existing conversation saves them at once.
  await s.prompt.fill('You are a poet.');
  await s.temperature.fill('');
  await s.save.click();
  await expect(s.status).toContainText('Saved. The next answer uses these settings.');
  await sendMessage(page, 'And now? [sim report]');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(await textOf(ui.answers.nth(1))).toBe(
    `model=${NOVA} | system=You are a poet. | temperature=0.70 | max_tokens=200 | messages=3`,
  );
  const stored = await (await page.request.get(`/api/conversations/${id}`)).json();
  expect(stored.settings).toEqual({ model_id: NOVA, system_prompt: 'You are a poet.', max_tokens: 200 });

  // A number out of range is refused in the form, with a reason.
  await s.maxTokens.fill('999999');
  await s.save.click();
  await expect(s.status.locator('.error')).toContainText('must be numbers');

  // "Use defaults" clears them.
  await s.reset.click();
  await expect(s.status).toContainText('Saved');
  await expect(s.prompt).toHaveValue('');
  await expect(s.maxTokens).toHaveValue('');
});

test('Regenerate writes a new answer to the last message, with the model now chosen', async ({ page }) => {
  const ui = await openChat(page);
  await page.locator('select[aria-label="Model"]').selectOption(HAIKU);
  await sendMessage(page, 'Which model? [sim report]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(await textOf(ui.answers.first())).toContain(`model=${HAIKU}`);

  const regenerate = page.locator('button.regenerate');
  await expect(regenerate).toHaveCount(1);
  await page.locator('select[aria-label="Model"]').selectOption(NOVA);
  await regenerate.click();
  await expect(ui.answers).toHaveCount(2);
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  // The model saw the same conversation (one message), not the first answer.
  expect(await textOf(ui.answers.nth(1))).toBe(
    `model=${NOVA} | system=You are a helpful assistant. Answer in the language the user writes in. | temperature=0.70 | max_tokens=1024 | messages=1`,
  );
  // Only the newest answer offers it; both answers are kept after a reload,
  // the earlier one shown quieter.
  await expect(regenerate).toHaveCount(1);
  await expect(ui.answers.first()).toHaveClass(/\bsuperseded\b/);
  await expect(ui.answers.nth(1)).not.toHaveClass(/\bsuperseded\b/);
  await expect(ui.answers.nth(1).locator('button.regenerate')).toHaveCount(1);
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.answers).toHaveCount(2);
  await expect(ui.answers.first()).toHaveClass(/\bsuperseded\b/);
  await expect(page.locator('select[aria-label="Model"]')).toHaveValue(NOVA);
});

test('editing an earlier message resends it and replaces the turns after it', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'First question [sim tokens=4]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  await sendMessage(page, 'Second question [sim tokens=4]');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  await expect(ui.turns).toHaveCount(4);

  // Edit the first message; Escape cancels without changing anything.
  const first = ui.users.first();
  await first.hover();
  await first.locator('button.edit-message').click();
  const editor = first.locator('form.edit-form textarea');
  await expect(editor).toHaveValue('First question [sim tokens=4]');
  await expect(editor).toBeFocused();
  await editor.press('Escape');
  await expect(first.locator('form.edit-form')).toHaveCount(0);
  await expect(ui.turns).toHaveCount(4);

  await first.hover();
  await first.locator('button.edit-message').click();
  await editor.fill('First question, rephrased [sim report]');
  await first.locator('button.save-edit').click();

  // The edited message and its new answer replace everything from it on.
  await expect(ui.turns).toHaveCount(2);
  await expect(ui.users.first().locator('.text')).toHaveText('First question, rephrased [sim report]');
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  // The model saw one message: the later turns are no longer history.
  expect(await textOf(answer)).toMatch(/\| messages=1$/);

  // The server agrees: a reload shows the same two turns.
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.turns).toHaveCount(2);
  await expect(ui.users.first().locator('.text')).toHaveText('First question, rephrased [sim report]');

  // And the conversation goes on from the edit.
  await sendMessage(page, 'Next [sim report]');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  expect(await textOf(ui.answers.nth(1))).toMatch(/\| messages=3$/);
});
