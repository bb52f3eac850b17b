// The phone layout (390×844): the transcript gets the screen. The list of
// conversations, Settings, the usage page and the switches live in a drawer
// behind the top bar's menu button; the top bar is one row; the composer
// stays on screen when the on-screen keyboard takes half of it.

import { test, expect, openChat, sendMessage, sidebar } from './support';

test.use({ viewport: { width: 390, height: 844 } });

const menu = (page: import('@playwright/test').Page) => page.getByRole('button', { name: 'Open the menu' });

for (const scheme of ['light', 'dark'] as const) {
  test(`the drawer opens and closes; the top bar is one row (${scheme})`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: scheme });
    const ui = await openChat(page);
    const list = sidebar(page);
    await expect(list.nav).toBeHidden();

    // One row: the menu, the title, the model picker and the badge share a line.
    const bar = page.locator('header.topbar');
    const row = await bar.boundingBox();
    expect(row!.height).toBeLessThanOrEqual(56);
    for (const part of [menu(page), bar.locator('h1'), bar.locator('select'), bar.locator('.badge.demo')]) {
      const box = (await part.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(390);
      expect(box.y).toBeGreaterThanOrEqual(row!.y);
      expect(box.y + box.height).toBeLessThanOrEqual(row!.y + row!.height);
    }
    await expect(bar.locator('button.settings-toggle')).toBeHidden();
    // The transcript starts right under it.
    const transcript = (await page.locator('section.transcript').boundingBox())!;
    expect(transcript.y).toBeLessThanOrEqual(row!.y + row!.height + 1);

    await menu(page).click();
    await expect(list.nav).toBeVisible();
    await expect(list.newChat).toBeInViewport();
    await expect(page.locator('select[name="theme"]')).toBeInViewport();
    // Esc closes it and gives the focus back to the menu button.
    await page.keyboard.press('Escape');
    await expect(list.nav).toBeHidden();
    await expect(menu(page)).toBeFocused();

    // So does its close button; a tap outside too.
    await menu(page).click();
    await list.nav.getByRole('button', { name: 'Close the menu' }).click();
    await expect(list.nav).toBeHidden();
    await menu(page).click();
    await page.mouse.click(385, 420);
    await expect(list.nav).toBeHidden();
    await expect(ui.input).toBeVisible();
  });
}

test('a conversation opened from the drawer closes it; Settings opens from it', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'First on a phone [sim tokens=3]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
  await page.goto('/');
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expect(ui.turns).toHaveCount(0);

  await menu(page).click();
  const list = sidebar(page);
  await list.items.first().locator('a').click();
  await expect(list.nav).toBeHidden();
  await expect(ui.turns).toHaveCount(2);

  await menu(page).click();
  await list.nav.getByRole('button', { name: 'Settings' }).click();
  await expect(list.nav).toBeHidden();
  const panel = page.locator('section.settings-panel');
  await expect(panel).toBeVisible();
  // Closing the panel gives the focus to the menu button, the way back to it.
  await panel.getByRole('button', { name: 'Close' }).click();
  await expect(panel).toBeHidden();
  await expect(menu(page)).toBeFocused();
});

test('the composer stays on screen when the keyboard shrinks the viewport', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'A long one to fill the screen. [sim tokens=400 delay_ms=0]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
  await ui.input.focus();
  // `interactive-widget=resizes-content`: the keyboard resizes the layout
  // viewport, as this does.
  await page.setViewportSize({ width: 390, height: 420 });
  await expect(ui.input).toBeInViewport();
  await expect(ui.send).toBeInViewport();
  // The newest text is still in view above it.
  await expect(ui.answers.first().locator('.text p').last()).toBeInViewport({ ratio: 0.1 });
  expect(await page.locator('meta[name="viewport"]').getAttribute('content')).toContain(
    'interactive-widget=resizes-content',
  );
});
