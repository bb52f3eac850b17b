import { test, expect, openChat, type Page } from './support';

/** Dispatches a synthetic Enter keydown on the composer and reports whether
 * the page cancelled it (the app cancels the Enter that sends). */
function dispatchEnter(page: Page, init: { isComposing?: boolean; keyCode?: number }) {
  return page.locator('textarea[aria-label="Message"]').evaluate((el, init) => {
    const ev = new KeyboardEvent('keydown', {
      key: 'Enter',
      code: 'Enter',
      bubbles: true,
      cancelable: true,
      isComposing: init.isComposing ?? false,
      keyCode: init.keyCode ?? 13,
    } as KeyboardEventInit);
    if (init.keyCode !== undefined && ev.keyCode !== init.keyCode) {
      Object.defineProperty(ev, 'keyCode', { get: () => init.keyCode });
    }
    const seen = { isComposing: ev.isComposing, keyCode: ev.keyCode };
    const notCancelled = el.dispatchEvent(ev);
    return { notCancelled, ...seen };
  }, init);
}

/** Lets a (wrong) send render before checking that nothing was sent. */
async function settle(page: Page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForTimeout(150);
}

test('Shift+Enter adds a line; Enter during IME composition does not send; Enter sends', async ({ page }) => {
  const ui = await openChat(page);

  await ui.input.click();
  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  await expect(ui.input).toHaveValue('first line\nsecond line');
  await settle(page);
  await expect(ui.turns).toHaveCount(0);

  // The Enter that confirms a Korean/Japanese/Chinese composition.
  const composing = await dispatchEnter(page, { isComposing: true });
  expect(composing.isComposing).toBe(true);
  expect(composing.notCancelled).toBe(true);
  await settle(page);
  await expect(ui.turns).toHaveCount(0);

  // Older IME signal: keyCode 229.
  const legacy = await dispatchEnter(page, { keyCode: 229 });
  expect(legacy.keyCode).toBe(229);
  expect(legacy.notCancelled).toBe(true);
  await settle(page);
  await expect(ui.turns).toHaveCount(0);
  await expect(ui.input).toHaveValue('first line\nsecond line');

  // A plain Enter sends the message, line break included.
  await ui.input.press('Enter');
  await expect(ui.users).toHaveCount(1);
  expect(await ui.users.first().locator('.text').evaluate((el) => el.textContent)).toBe('first line\nsecond line');
  await expect(ui.answers).toHaveCount(1);
  await expect(ui.input).toHaveValue('');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
});

test('the controls are reached in reading order, and closing Settings returns the focus', async ({ page }) => {
  await openChat(page);
  // Tab from the top of the page: the sidebar, then the top bar, then the composer.
  const order: string[] = [];
  await page.locator('body').focus();
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    order.push(
      await page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        return el.getAttribute('aria-label') || el.getAttribute('name') || el.textContent!.trim();
      }),
    );
  }
  const at = (name: string) => order.indexOf(name);
  for (const name of ['New chat', 'Usage', 'Language', 'Model', 'Settings', 'Message']) {
    expect(order, `${name} is reached by Tab`).toContain(name);
  }
  expect(at('New chat')).toBeLessThan(at('Model'));
  expect(at('Usage')).toBeLessThan(at('Model'));
  expect(at('Model')).toBeLessThan(at('Settings'));
  expect(at('Settings')).toBeLessThan(at('Message'));

  // Esc in the panel closes it and gives the focus back to Settings.
  const toggle = page.locator('button.settings-toggle');
  await toggle.click();
  const panel = page.locator('section.settings-panel');
  await panel.locator('textarea[name="system_prompt"]').focus();
  await page.keyboard.press('Escape');
  await expect(panel).toHaveCount(0);
  await expect(toggle).toBeFocused();
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  // So does its Close button.
  await toggle.click();
  await panel.getByRole('button', { name: 'Close' }).click();
  await expect(panel).toHaveCount(0);
  await expect(toggle).toBeFocused();
});
