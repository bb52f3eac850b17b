// What a first visit costs: the size of what the browser downloads before the
// page is interactive, the time to interactive on a slow phone (Chrome's
// "Fast 3G" network and 4× CPU slowdown, through the DevTools Protocol), and
// how long a 1,000-message conversation takes to open.
//
//   cd end2end && BEDROCK_CHAT_E2E_BINARY=./target/release/bedrock-chat \
//     npx playwright test --config bench.config.ts first-load

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { test, expect, type Page } from '@playwright/test';

const PKG = path.join(__dirname, '..', '..', 'target', 'site', 'pkg');
const RUNS = 3;
/** DevTools' "Fast 3G" preset. */
const FAST_3G = {
  offline: false,
  latency: 150 * 3.75,
  downloadThroughput: ((1.6 * 1024 * 1024) / 8) * 0.9,
  uploadThroughput: ((750 * 1024) / 8) * 0.9,
};
const CPU_SLOWDOWN = 4;
const LONG_EXCHANGES = 500;
/** Messages a page opens with (`TRANSCRIPT_PAGE` in src/conversations/mod.rs). */
const TRANSCRIPT_PAGE = 100;

const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} KB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Records, inside the page, when the first paint with content and the
 * hydration happened (ms since navigation start). */
function recordMilestones(page: Page) {
  return page.addInitScript(() => {
    const w = window as unknown as { __hydratedAt?: number };
    new MutationObserver((_, observer) => {
      if (document.querySelector('main.chat[data-hydrated="true"]')) {
        w.__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
  });
}

async function milestones(page: Page) {
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true', { timeout: 60_000 });
  return page.evaluate(() => ({
    contentfulPaint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
    interactive: (window as unknown as { __hydratedAt: number }).__hydratedAt,
  }));
}

test('bundle sizes', async () => {
  const lines = [
    'bundle (target/site/pkg): raw, gzip -9, and the brotli file served when the browser takes it;',
    '`split_markdown` (and `__wasm_split*.js`) is fetched after hydration, `split_on_demand`',
    '(settings, the editor, the usage page) when one is first opened, the rest before:',
  ];
  for (const file of fs.readdirSync(PKG).filter((f) => /\.(wasm|js|css)$/.test(f)).sort()) {
    const bytes = fs.readFileSync(path.join(PKG, file));
    const gz = zlib.gzipSync(bytes, { level: 9 }).length;
    const brFile = path.join(PKG, `${file}.br`);
    const br = fs.existsSync(brFile) ? kb(fs.statSync(brFile).size) : 'none';
    lines.push(
      `  ${file.padEnd(28)} ${kb(bytes.length).padStart(10)}  ${kb(gz).padStart(9)} gz (${gz} B)  ${br.padStart(9)} br`,
    );
  }
  console.log(lines.join('\n'));
});

test('first load to interactive on Fast 3G with a 4× slower CPU', async ({ page }) => {
  test.setTimeout(180_000);
  await recordMilestones(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', FAST_3G);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
  const paints: number[] = [];
  const interactive: number[] = [];
  let wasmEncoding = '';
  page.on('response', (r) => {
    if (r.url().endsWith('.wasm')) wasmEncoding = r.headers()['content-encoding'] ?? 'identity';
  });
  for (let run = 0; run < RUNS; run++) {
    await page.goto('/', { waitUntil: 'commit', timeout: 60_000 });
    const m = await milestones(page);
    paints.push(m.contentfulPaint);
    interactive.push(m.interactive);
  }
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
  const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
  console.log(
    [
      `first load, Fast 3G + ${CPU_SLOWDOWN}× CPU, cache off, WASM served as ${wasmEncoding} ` +
        `(${RUNS} runs, ms from navigation start):`,
      `  first contentful paint  median ${median(paints).toFixed(0)} ms  (${ms(paints)})`,
      `  interactive (hydrated)  median ${median(interactive).toFixed(0)} ms  (${ms(interactive)})`,
    ].join('\n'),
  );
});

test('opening a 1,000-message conversation', async ({ page }) => {
  test.setTimeout(300_000);
  await page.goto('/');
  let id: string | undefined;
  for (let i = 1; i <= LONG_EXCHANGES; i++) {
    const response = await page.request.post('/api/chat/stream', {
      data: {
        content: `Message ${i} of a long conversation, with a little **Markdown**. [sim tokens=12]`,
        ...(id ? { conversation_id: id } : {}),
      },
      headers: { accept: 'text/event-stream' },
      timeout: 30_000,
    });
    expect(response.status()).toBe(200);
    const body = await response.text();
    id ??= body.match(/"conversation_id":"([0-9a-f-]{36})"/)![1];
  }
  const html = await (await page.request.get(`/c/${id}`)).text();
  await recordMilestones(page);
  const interactive: number[] = [];
  const paints: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await page.goto(`/c/${id}`, { waitUntil: 'commit' });
    const m = await milestones(page);
    await expect(page.locator('article.turn')).toHaveCount(TRANSCRIPT_PAGE);
    interactive.push(m.interactive);
    paints.push(m.contentfulPaint);
  }
  // The page before the newest, on demand.
  const shown: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await page.goto(`/c/${id}`);
    await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
    const started = Date.now();
    await page.getByRole('button', { name: /earlier messages/ }).click();
    await expect(page.locator('article.turn')).toHaveCount(2 * TRANSCRIPT_PAGE);
    shown.push(Date.now() - started);
  }
  console.log(
    [
      `a ${2 * LONG_EXCHANGES}-message conversation (opens at its newest ${TRANSCRIPT_PAGE}): page ${kb(html.length)} ` +
        `(${kb(zlib.gzipSync(html).length)} gz) (${RUNS} runs, no throttling):`,
      `  first contentful paint  median ${median(paints).toFixed(0)} ms`,
      `  interactive (hydrated)  median ${median(interactive).toFixed(0)} ms`,
      `  the ${TRANSCRIPT_PAGE} before them on screen  median ${median(shown).toFixed(0)} ms after the click`,
    ].join('\n'),
  );
});
