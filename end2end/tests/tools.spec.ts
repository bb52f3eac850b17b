// Tool calls and thinking in the browser: cards that grow live, stay in
// order around the text, survive a reload and appear in a second tab, and
// say "stopped" when the answer is stopped.

import { test, expect, openChat, sendMessage, conversationIdOf } from './support';

const SONNET_37 = 'us.anthropic.claude-3-7-sonnet-20250219-v1:0';

test('a tool card shows the call live, its result, and the text around it in order', async ({ page, context }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'What is 6*7? [sim call=calculator:{"expression":"6*7"} delay_ms=40]');
  const answer = ui.answers.first();
  const card = answer.locator('.tool-card[data-tool="calculator"]');
  await expect(card).toBeVisible();
  await expect(card.locator('.tool-name')).toHaveText('Calculator');
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  await expect(card).toHaveClass(/\bok\b/);
  await expect(card.locator('.tool-status')).toHaveText(/^Done in \d+ ms$/);
  // Pretty JSON once complete.
  await expect(card.locator('.tool-args')).toHaveText('{\n  "expression": "6*7"\n}');
  // The result is collapsed until asked for.
  await expect(card.locator('.tool-output')).toHaveCount(0);
  await card.locator('.tool-result-toggle').click();
  await expect(card.locator('.tool-output')).toHaveText('6*7 = 42');

  // Text, card, text: in the order they were written.
  const order = await answer.locator('.text, .tool-card').evaluateAll((els) =>
    els.map((el) => (el.classList.contains('tool-card') ? 'card' : 'text')),
  );
  expect(order).toEqual(['text', 'card', 'text']);
  await expect(answer.locator('.text').last()).toContainText('calculator said: 6*7 = 42');

  // A reload and a second tab show the same, from the store.
  const id = conversationIdOf(page);
  const other = await context.newPage();
  await openChat(other, `/c/${id}`);
  const again = other.locator('article.turn.assistant').first();
  await expect(again.locator('.tool-card[data-tool="calculator"]')).toHaveClass(/\bok\b/);
  await expect(again.locator('.tool-card .tool-args')).toHaveText('{\n  "expression": "6*7"\n}');
  await page.reload();
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('article.turn.assistant .tool-card')).toHaveCount(1);
});

test('a failed call shows its error open on the card', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, '[sim call=calculator:{"expression":"2+*("}]');
  const card = ui.answers.first().locator('.tool-card');
  await expect(card).toHaveClass(/\bfailed\b/, { timeout: 15_000 });
  await expect(card.locator('.tool-status')).toHaveText('Failed');
  await expect(card.locator('.tool-output')).toContainText('cannot be computed');
});

test('thinking streams open, then collapses saying how long it took', async ({ page }) => {
  const ui = await openChat(page);
  await page.locator('select[aria-label="Model"]').selectOption(SONNET_37);
  await page.locator('button.settings-toggle').click();
  const panel = page.locator('section.settings-panel');
  await panel.locator('input[name="thinking"]').check();
  await panel.locator('button.save-settings').click();
  await sendMessage(page, 'Think it over. [sim think=30 delay_ms=30 redacted]');
  const answer = ui.answers.first();
  const thinking = answer.locator('.thinking');
  await expect(thinking.locator('.thinking-toggle')).toHaveText('Thinking…');
  await expect(thinking.locator('.thinking-text')).toContainText('Thinking about step 1:');
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(thinking.locator('.thinking-toggle')).toHaveText(/^Thought for \d+\.\d s$/);
  await expect(thinking.locator('.thinking-text')).toHaveCount(0);
  await thinking.locator('.thinking-toggle').click();
  await expect(thinking.locator('.thinking-redacted')).toBeVisible();
  // Thinking comes before the answer's text.
  const order = await answer.locator('.thinking, .text').evaluateAll((els) =>
    els.map((el) => (el.classList.contains('thinking') ? 'thinking' : 'text')),
  );
  expect(order).toEqual(['thinking', 'text']);
});

test('Stop while a call is being written ends it, and its card says stopped', async ({ page }) => {
  const ui = await openChat(page);
  // The arguments arrive slowly: Stop lands while the call is written.
  await sendMessage(page, '[sim call=calculator:{"expression":"1+2+3+4+5+6+7+8+9+10+11+12+13+14"} delay_ms=250]');
  const answer = ui.answers.first();
  const card = answer.locator('.tool-card');
  await expect(card).toHaveClass(/\bwriting\b/, { timeout: 15_000 });
  await ui.stop.click();
  await expect(answer).toHaveAttribute('data-status', 'stopped', { timeout: 15_000 });
  await expect(card).toHaveClass(/\bstopped\b/);
  await expect(card.locator('.tool-status')).toHaveText('Stopped');
  // Stored that way: a reload shows the same.
  await page.reload();
  await expect(page.locator('article.turn.assistant .tool-card .tool-status')).toHaveText('Stopped');
});

test('a conversation turns tools off in its settings', async ({ page }) => {
  const ui = await openChat(page);
  await page.locator('button.settings-toggle').click();
  const panel = page.locator('section.settings-panel');
  const calculator = panel.locator('input[name="tools"][value="calculator"]');
  await expect(calculator).toBeChecked();
  await calculator.uncheck();
  await panel.locator('button.save-settings').click();
  await sendMessage(page, '[sim call=calculator:{"expression":"1+1"}]');
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  // Calculator was off and the others on: the model was offered tools,
  // called the one it may not, and was told so.
  await expect(answer.locator('.tool-card')).toHaveCount(1);
  await expect(answer.locator('.tool-card .tool-status')).toHaveText('Failed');
  await expect(answer.locator('.tool-card .tool-output')).toContainText('There is no tool named "calculator"');
});

test('a call that needs approval waits for Approve or Deny, in every tab that follows it', async ({ page, context }) => {
  const ui = await openChat(page);
  await sendMessage(page, '[sim call=search_conversations:{"query":"zebra"}]');
  const answer = ui.answers.first();
  const card = answer.locator('.tool-card');
  await expect(card).toHaveClass(/\bawaiting\b/, { timeout: 15_000 });
  await expect(card.locator('.tool-status')).toHaveText('Waiting for your approval');

  // A second tab following the same answer shows the same question.
  const id = conversationIdOf(page);
  const other = await context.newPage();
  await openChat(other, `/c/${id}`);
  const otherCard = other.locator('article.turn.assistant .tool-card');
  await expect(otherCard).toHaveClass(/\bawaiting\b/);

  // Approved in the second tab: both see it run and finish.
  await otherCard.locator('button.approve').click();
  await expect(card).toHaveClass(/\bok\b/, { timeout: 15_000 });
  await expect(otherCard).toHaveClass(/\bok\b/);
  await expect(answer).toHaveAttribute('data-status', 'complete');

  // Denied: the model is told the user declined.
  await sendMessage(page, '[sim call=search_conversations:{"query":"zebra"}]');
  const second = ui.answers.nth(1);
  await expect(second.locator('.tool-card')).toHaveClass(/\bawaiting\b/, { timeout: 15_000 });
  await second.locator('.tool-card button.deny').click();
  await expect(second).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  await expect(second.locator('.tool-card .tool-output')).toHaveText('The user declined to run this tool call.');
  await expect(second.locator('.text').last()).toContainText('declined');
});
