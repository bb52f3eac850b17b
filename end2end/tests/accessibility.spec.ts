import fs from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { test, expect, openChat, sendMessage } from './support';

// axe-core, run in the page: WCAG 2.1 A and AA, and its best practices, on
// the empty page, a streamed answer with code and a table, the settings panel
// and the message editor, the usage page, and the phone layout with its
// drawer closed and open, in light and dark.
const AXE = fs.readFileSync(path.join(__dirname, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

async function violations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const axe = (window as any).axe;
    const results = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return results.violations.map(
      (v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`,
    );
  });
}

for (const scheme of ['light', 'dark'] as const) {
  test.describe(`in the ${scheme} theme`, () => {
    test.use({ colorScheme: scheme });

    test('the empty chat page has no accessibility violations', async ({ page }) => {
      await openChat(page);
      expect(await violations(page)).toEqual([]);
    });

    test('a streamed answer with code and a table has none', async ({ page }) => {
      const ui = await openChat(page);
      await sendMessage(page, 'Show me everything [sim markdown=1500]');
      await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
      await expect(ui.answers.first().locator('pre code')).not.toHaveCount(0);
      await expect(ui.answers.first().locator('table')).not.toHaveCount(0);
      // Screen readers hear what the button's CSS label shows.
      await expect(page.locator('.copy-code').first()).toHaveAccessibleName('Copy code');
      expect(await violations(page)).toEqual([]);
    });

    test('the settings panel and the message editor have none', async ({ page }) => {
      const ui = await openChat(page);
      await sendMessage(page, 'Edit me [sim tokens=3]');
      await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
      await page.locator('button.settings-toggle').click();
      await expect(page.locator('section.settings-panel')).toBeVisible();
      expect(await violations(page)).toEqual([]);
      const first = ui.users.first();
      await first.hover();
      await first.locator('button.edit-message').click();
      await expect(first.locator('form.edit-form textarea')).toBeFocused();
      expect(await violations(page)).toEqual([]);
    });

    test('the phone layout has none, with the drawer closed and open', async ({ page }) => {
      await page.setViewportSize({ width: 390, height: 844 });
      const ui = await openChat(page);
      await sendMessage(page, 'On a phone [sim markdown=600]');
      await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
      expect(await violations(page)).toEqual([]);
      await page.getByRole('button', { name: 'Open the menu' }).click();
      await expect(page.locator('nav.sidebar')).toBeVisible();
      expect(await violations(page)).toEqual([]);
    });

    test('the usage page has none', async ({ page }) => {
      const ui = await openChat(page);
      await sendMessage(page, 'Count me [sim tokens=3]');
      await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete');
      await page.getByRole('link', { name: 'Usage' }).click();
      await expect(page.locator('.usage-period')).toHaveCount(2);
      expect(await violations(page)).toEqual([]);
    });
  });
}
