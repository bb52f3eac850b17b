// Time to first text, as the page sees it: from the Enter keydown to the
// first text node in the new answer. Both instants are taken inside the page
// with performance.now(), so Playwright's own round trips are not counted.
//
//   cd end2end && npx playwright test --config bench.config.ts

import { test, expect } from '@playwright/test';

const MESSAGES = 15;

declare global {
  interface Window {
    __firstText?: Promise<number>;
  }
}

function summarise(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  // Nearest-rank percentile.
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { median: pct(50), p90: pct(90), min: sorted[0], max: sorted[sorted.length - 1] };
}

test('first answer text after Enter', async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  const input = page.locator('textarea[aria-label="Message"]');

  const samples: number[] = [];
  for (let i = 1; i <= MESSAGES; i++) {
    await input.fill(`Benchmark message ${i}. [sim tokens=20 first_token_ms=0]`);

    // Arm the probe: a capturing keydown listener (runs before the app's
    // handler) and an observer that fires when the new answer gets text.
    await page.evaluate(() => {
      window.__firstText = new Promise<number>((resolve, reject) => {
        const before = document.querySelectorAll('article.turn.assistant').length;
        let start: number | null = null;
        const onKeydown = (ev: KeyboardEvent) => {
          if (ev.key === 'Enter' && !ev.shiftKey && start === null) start = performance.now();
        };
        const observer = new MutationObserver(() => {
          const answer = document.querySelectorAll('article.turn.assistant')[before];
          const text = answer?.querySelector('.text');
          if (!text || !text.textContent) return;
          const end = performance.now();
          observer.disconnect();
          document.removeEventListener('keydown', onKeydown, true);
          if (start === null) reject(new Error('text appeared before Enter'));
          else resolve(end - start);
        });
        document.addEventListener('keydown', onKeydown, true);
        observer.observe(document.querySelector('.transcript')!, {
          childList: true,
          subtree: true,
          characterData: true,
        });
      });
    });

    await input.press('Enter');
    const ms = await page.evaluate(() => window.__firstText!);
    samples.push(ms);

    const answer = page.locator('article.turn.assistant').nth(i - 1);
    await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  }

  const s = summarise(samples);
  const f = (n: number) => n.toFixed(1);
  console.log(`first text after Enter, ${samples.length} messages [sim tokens=20 first_token_ms=0]:`);
  console.log(`  median ${f(s.median)} ms  p90 ${f(s.p90)} ms  min ${f(s.min)} ms  max ${f(s.max)} ms`);
  console.log(`  samples (ms, in order): ${samples.map(f).join(', ')}`);
  expect(samples).toHaveLength(MESSAGES);
});
