// The UI speaks English and Korean (chosen by the `lang` cookie, else the
// browser's Accept-Language, rendered so by the server) and has light and
// dark themes (following the system unless the user picks one).

import { test, expect, openChat } from './support';
import type { Page } from '@playwright/test';

const DARK_BG = 'rgb(15, 17, 21)';
const LIGHT_BG = 'rgb(246, 247, 249)';

const languageSwitch = (page: Page) => page.locator('select[name="language"]');
const themeSwitch = (page: Page) => page.locator('select[name="theme"]');
const messageBox = (page: Page) => page.locator('textarea[name="message"]');
const bodyBackground = (page: Page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);

test.describe('a Korean browser', () => {
  test.use({ locale: 'ko-KR' });

  test('gets the Korean UI from the server', async ({ page, playwright, baseURL }) => {
    // The HTML as the server sends it, before any WASM runs.
    const request = await playwright.request.newContext({
      baseURL,
      extraHTTPHeaders: { 'accept-language': 'ko-KR,ko;q=0.9,en-US;q=0.8' },
    });
    const html = await (await request.get('/')).text();
    await request.dispose();
    expect(html).toMatch(/<html[^>]* lang="ko"/);
    expect(html).toContain('보내기');
    expect(html).toContain('placeholder="메시지를 입력하세요');
    expect(html).toContain('새 채팅');
    expect(html).not.toContain('Shift+Enter for a new line');

    await openChat(page);
    await expect(page.locator('html')).toHaveAttribute('lang', 'ko');
    await expect(page.locator('button.send')).toHaveText('보내기');
    await expect(messageBox(page)).toHaveAttribute('aria-label', '메시지');
    await expect(page.getByRole('combobox', { name: '언어' })).toHaveValue('ko');
    await expect(page.locator('nav.sidebar')).toHaveAttribute('aria-label', '대화 목록');

    // The parts that appear as an answer is written speak Korean too.
    await messageBox(page).fill('안녕하세요 [sim tokens=5]');
    await messageBox(page).press('Enter');
    const answer = page.locator('article.turn.assistant').first();
    await expect(answer).toHaveAttribute('data-status', 'complete');
    await expect(answer.locator('.state.usage')).toHaveText(/^입력 \d+토큰 · 출력 5토큰 · .*초 · \$0\.\d+$/);
    await expect(page.getByTestId('announcer')).toHaveText('답변이 완료됐어요.');
  });

  test('switches to English at once, and stays English after a reload', async ({ page, context }) => {
    await openChat(page);
    await expect(page.locator('button.send')).toHaveText('보내기');
    // A marker that a reload would lose.
    await page.evaluate(() => ((window as any).__sameDocument = true));

    await languageSwitch(page).selectOption('en');
    await expect(page.locator('button.send')).toHaveText('Send');
    await expect(page.locator('textarea[aria-label="Message"]')).toHaveAttribute(
      'placeholder',
      'Message (Enter to send, Shift+Enter for a new line)',
    );
    await expect(page.locator('a.new-chat')).toHaveText('New chat');
    await expect(page.locator('nav.sidebar[aria-label="Conversations"]')).toBeVisible();
    await expect(page.getByRole('combobox', { name: 'Language' })).toHaveValue('en');
    await expect(page.locator('html')).toHaveAttribute('lang', 'en');
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

    const cookie = (await context.cookies()).find((c) => c.name === 'lang');
    expect(cookie?.value).toBe('en');
    expect(cookie?.path).toBe('/');
    expect(cookie?.sameSite).toBe('Lax');
    expect(cookie!.expires * 1000 - Date.now()).toBeGreaterThan(360 * 24 * 3600 * 1000);

    // The cookie wins over the browser's Korean Accept-Language.
    await page.reload();
    await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.locator('html')).toHaveAttribute('lang', 'en');
    await expect(page.locator('button.send')).toHaveText('Send');
    await expect(languageSwitch(page)).toHaveValue('en');

    // And back.
    await languageSwitch(page).selectOption('ko');
    await expect(page.locator('button.send')).toHaveText('보내기');
    await expect(page.locator('html')).toHaveAttribute('lang', 'ko');
  });
});

test('an English browser gets English, with the switches labelled', async ({ page }) => {
  await openChat(page);
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await expect(page.getByRole('combobox', { name: 'Language' })).toHaveValue('en');
  await expect(page.getByRole('combobox', { name: 'Theme' })).toHaveValue('system');
  await expect(page.locator('button.send')).toHaveText('Send');
});

test('the theme switch sets data-theme on <html> and is remembered', async ({ page }) => {
  await openChat(page);
  const html = page.locator('html');
  await expect(html).not.toHaveAttribute('data-theme');
  expect(await bodyBackground(page)).toBe(LIGHT_BG);

  await themeSwitch(page).selectOption('dark');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  await expect(page.locator('meta[name="color-scheme"]')).toHaveAttribute('content', 'dark');
  expect(await bodyBackground(page)).toBe(DARK_BG);
  expect(await page.evaluate(() => localStorage.getItem('theme'))).toBe('dark');

  await page.reload();
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  await expect(themeSwitch(page)).toHaveValue('dark');
  expect(await bodyBackground(page)).toBe(DARK_BG);

  await themeSwitch(page).selectOption('light');
  await expect(html).toHaveAttribute('data-theme', 'light');
  expect(await bodyBackground(page)).toBe(LIGHT_BG);

  await themeSwitch(page).selectOption('system');
  await expect(html).not.toHaveAttribute('data-theme');
  expect(await page.evaluate(() => localStorage.getItem('theme'))).toBeNull();
});

test.describe('a system in dark mode', () => {
  test.use({ colorScheme: 'dark' });

  test('gets the dark theme with no choice made, and Light overrides it', async ({ page }) => {
    await openChat(page);
    await expect(page.locator('html')).not.toHaveAttribute('data-theme');
    expect(await bodyBackground(page)).toBe(DARK_BG);

    await themeSwitch(page).selectOption('light');
    expect(await bodyBackground(page)).toBe(LIGHT_BG);
    await page.reload();
    await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
    expect(await bodyBackground(page)).toBe(LIGHT_BG);
  });
});

test('on a phone the switches are in the drawer and work from the keyboard', async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 667 });
  await openChat(page);
  await page.getByRole('button', { name: 'Open the menu' }).click();
  for (const select of [languageSwitch(page), themeSwitch(page)]) {
    await expect(select).toBeVisible();
    const box = (await select.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(375);
    expect(box.height).toBeGreaterThanOrEqual(28);
  }
  await themeSwitch(page).focus();
  await expect(themeSwitch(page)).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
});
