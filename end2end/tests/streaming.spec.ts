import { test, expect, openChat, sendMessage, fetchAnswers, textOf, selectedModel } from './support';

test('the answer streams in, completes with the exact text, and the conversation continues', async ({
  page,
  request,
}) => {
  const ui = await openChat(page);
  await expect(page.locator('.badge.demo')).toBeVisible();
  await expect(page.locator('.badge.demo')).toHaveText('demo model (offline)');
  await expect(page.locator('.empty-state')).toBeVisible();
  const model = await selectedModel(page);
  expect(model).not.toBe('');

  const first = 'Tell me about streams. [sim tokens=60 delay_ms=40]';
  await sendMessage(page, first);

  await expect(ui.users).toHaveCount(1);
  await expect(ui.users.first().locator('.text')).toHaveText(first);
  await expect(ui.input).toHaveValue('');
  const answer = ui.answers.first();

  // Some text must be on screen while the answer is still being written
  // (60 tokens at 40 ms take about 2.4 s). The check runs every frame and
  // cannot succeed once the stream has ended.
  const partial = await page.waitForFunction(
    () => {
      const a = document.querySelector('article.turn.assistant');
      // Rendered Markdown: a block ends with a line break the final text
      // may continue past.
      const text = (a?.querySelector('.text')?.textContent ?? '').trimEnd();
      return a?.getAttribute('data-status') === 'streaming' && text.length > 0 ? text : null;
    },
    null,
    { timeout: 10_000 },
  );
  const partialText = (await partial.jsonValue()) as string;
  await expect(answer.locator('.state.streaming')).toBeVisible();
  await expect(ui.stop).toBeVisible();

  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  const [expected1] = await fetchAnswers(request, [first], model);
  expect(expected1.events.at(-1)?.event).toBe('done');
  const final1 = await textOf(answer);
  expect(final1).toBe(expected1.text);
  expect(final1.startsWith('Demo answer to message 1 of 1. You said: "Tell me about streams."')).toBe(true);
  expect(partialText.length).toBeLessThan(final1.length);
  expect(final1.startsWith(partialText)).toBe(true);

  await expect(answer.locator('.state.usage')).toBeVisible();
  await expect(answer.locator('.state.usage')).toContainText(/\d+ tokens in · 60 out/);
  await expect(answer.locator('.state.streaming')).toHaveCount(0);
  await expect(ui.send).toBeVisible();
  await expect(page.locator('.empty-state')).toHaveCount(0);

  // A follow-up continues the stored conversation: the model sees all of it,
  // so this is message 3 of 3.
  const second = 'And a follow-up question?';
  await sendMessage(page, second);
  await expect(ui.answers).toHaveCount(2);
  const answer2 = ui.answers.nth(1);
  await expect(answer2).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  await expect(answer2.locator('.text')).toContainText('Demo answer to message 3 of 3.');
  // The same two messages in one conversation through the API (as another
  // user) give the same answers.
  const [again1, expected2] = await fetchAnswers(request, [first, second], model);
  expect(again1.text).toBe(final1);
  expect(expected2.events.at(-1)?.event).toBe('done');
  expect(await textOf(answer2)).toBe(expected2.text);
  await expect(answer2.locator('.state.usage')).toBeVisible();

  // Earlier turns are untouched.
  expect(await textOf(answer)).toBe(final1);
  await expect(ui.turns).toHaveCount(4);
});

test('deltas that arrive within one frame are drawn in one update, and long answers are grouped', async ({ page }) => {
  const ui = await openChat(page);
  // Count the redraws of the unfinished block per animation frame.
  await page.evaluate(() => {
    const w = window as unknown as { __frame: number; __drawsPerFrame: Map<number, number> };
    w.__frame = 0;
    w.__drawsPerFrame = new Map();
    const tick = () => {
      w.__frame += 1;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    new MutationObserver((records) => {
      for (const r of records) {
        if ((r.target as Element).classList?.contains('md-tail')) {
          w.__drawsPerFrame.set(w.__frame, (w.__drawsPerFrame.get(w.__frame) ?? 0) + 1);
        }
      }
    }).observe(document.querySelector('.transcript')!, { childList: true, subtree: true });
  });
  // 40 paragraphs, one word every millisecond: several deltas per frame.
  await sendMessage(page, 'Write a lot. [sim markdown=6000 chunk=4 delay_ms=1]');
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  const draws = await page.evaluate(() => [
    ...(window as unknown as { __drawsPerFrame: Map<number, number> }).__drawsPerFrame.values(),
  ]);
  expect(draws.length).toBeGreaterThan(3);
  // One redraw per frame, but for the frame the answer ended in (its last
  // delta, then the end).
  expect(draws.filter((n) => n > 1).length).toBeLessThanOrEqual(1);

  // Finished blocks were put in groups of at most 16.
  const groups = answer.locator('.md-done > .md-group');
  expect(await groups.count()).toBeGreaterThan(1);
  for (const size of await groups.evaluateAll((els) => els.map((el) => el.childElementCount))) {
    expect(size).toBeLessThanOrEqual(16);
  }
});
