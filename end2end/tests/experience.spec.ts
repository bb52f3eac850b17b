// The smaller things a good chat app does: a composer that grows, answers
// announced to screen readers without reading every token, and per-answer
// speed figures.

import { test, expect, openChat, sendMessage } from './support';

test('the composer grows with its text, up to a limit', async ({ page }) => {
  const ui = await openChat(page);
  const height = () => ui.input.evaluate((el) => el.getBoundingClientRect().height);
  const empty = await height();
  await ui.input.fill('one\ntwo\nthree\nfour\nfive\nsix');
  const six = await height();
  expect(six).toBeGreaterThan(empty + 40);
  await ui.input.fill(Array.from({ length: 80 }, (_, i) => `line ${i}`).join('\n'));
  const many = await height();
  const viewport = page.viewportSize()!.height;
  expect(many).toBeLessThanOrEqual(viewport * 0.4 + 1);
  expect(await ui.input.evaluate((el) => el.scrollHeight > el.clientHeight)).toBe(true);
});

test('screen readers hear when an answer starts and ends, not every token', async ({ page }) => {
  const ui = await openChat(page);
  const announcer = page.getByTestId('announcer');
  await expect(announcer).toHaveAttribute('aria-live', 'polite');
  await expect(announcer).toHaveText('');
  // The transcript itself is not a live region.
  expect(await page.locator('[aria-live]').count()).toBe(1);

  await sendMessage(page, 'Tell me slowly. [sim tokens=30 delay_ms=40]');
  await expect(announcer).toHaveText('Writing the answer…');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 10_000 });
  await expect(announcer).toHaveText('The answer is complete.');

  await sendMessage(page, 'Now fail. [sim fail=model_stream_error after=2]');
  await expect(announcer).toContainText('The answer failed:');
});

test('each answer shows its tokens, time to first token, speed and cost', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Measure me. [sim tokens=40 delay_ms=10 first_token_ms=200]');
  const usage = ui.answers.first().locator('.state.usage');
  // ... and, at the configured price of the default model, what it cost.
  await expect(usage).toHaveText(/^\d+ tokens in · 40 out · first token 0\.\d s · \d+ tokens\/s · \d+\.\d s · \$0\.\d+$/, {
    timeout: 10_000,
  });
  // The same figures come back from the store after a reload.
  const shown = await usage.textContent();
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.answers.first().locator('.state.usage')).toHaveText(shown!);
});

test('scrolling up stops following the answer; Jump to latest brings it back', async ({ page }) => {
  await page.setViewportSize({ width: 1000, height: 520 });
  const ui = await openChat(page);
  await sendMessage(page, 'A long one. [sim tokens=700 delay_ms=15]');
  const answer = ui.answers.first();
  // Enough text to overflow the transcript.
  await expect(answer.locator('.text')).toHaveText(/^(\S+\s+){150}/, { timeout: 10_000 });
  const transcript = page.locator('section.transcript');
  const jump = page.locator('.jump-to-latest');
  await expect(jump).toHaveCount(0);

  // Scrolled up, the view stays where the user put it while text arrives.
  await transcript.hover();
  await page.mouse.wheel(0, -250);
  await expect(jump).toBeVisible();
  const questionTop = () => ui.users.first().evaluate((el) => el.getBoundingClientRect().top);
  const before = await questionTop();
  const textBefore = (await answer.locator('.text').textContent())!.length;
  await page.waitForTimeout(800);
  expect((await answer.locator('.text').textContent())!.length).toBeGreaterThan(textBefore);
  expect(Math.abs((await questionTop()) - before)).toBeLessThan(2);

  // The button brings the newest text back into view, and following resumes.
  await jump.click();
  await expect(jump).toHaveCount(0);
  // (Before hydration the box is column-reverse, where the bottom is 0.)
  const atBottom = () =>
    transcript.evaluate((el) =>
      el.classList.contains('pinned-by-script')
        ? el.scrollHeight - el.scrollTop - el.clientHeight < 5
        : Math.abs(el.scrollTop) < 5,
    );
  expect(await atBottom()).toBe(true);
  await page.waitForTimeout(500);
  expect(await atBottom()).toBe(true);

  // A scroll up with no wheel, key or touch, while nothing grows (find in
  // page, a screen reader) is the user's too.
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await page.waitForTimeout(1_100); // past the wheel's window
  await transcript.evaluate((el) => el.scrollBy(0, -250));
  await expect(jump).toBeVisible();
  await page.waitForTimeout(300);
  expect(await atBottom()).toBe(false);

  // A long conversation opens at its newest text, before and after hydration.
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  expect(await atBottom()).toBe(true);
  await expect(jump).toHaveCount(0);
});

test('the conversation shows its total, and the usage page what the owner used', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Cost me. [sim tokens=5]');
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete');
  const cost = (await answer.locator('.state.usage').textContent())!.split(' · ').pop()!;
  expect(cost).toMatch(/^\$0\.\d+$/);
  const escaped = cost.replace(/[$.]/g, (c) => `\\${c}`);
  await expect(page.locator('.conversation-total')).toHaveText(new RegExp(`^\\d+ tokens · ${escaped}$`));

  await page.getByRole('link', { name: 'Usage' }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await expect(page.getByRole('heading', { name: 'Usage', level: 1 })).toBeVisible();
  const today = page.locator('.usage-period').first();
  await expect(today.locator('h2')).toHaveText('Today');
  await expect(today.locator('dd').first()).toHaveText('1');
  await expect(today.locator('dd.cost')).toHaveText(cost);
  const row = page.locator('.usage-by-model tbody tr');
  await expect(row).toHaveCount(1);
  await expect(row.locator('th')).toHaveText('Claude 3.5 Haiku');
  await expect(row.locator('td.cost')).toHaveText(cost);

  await page.getByRole('link', { name: 'Back to chat' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(ui.input).toBeVisible();
});
