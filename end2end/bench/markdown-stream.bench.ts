// Client work per delta while a 100 KB Markdown answer streams into a
// conversation that already has 200 messages. The figures come from Chrome
// itself through the DevTools Protocol: `Performance.getMetrics` gives the
// main thread's cumulative script, layout and style time, and
// `Network.dataReceived` the bytes of the answer's stream as they arrive.
// Every delta is the same size (CHUNK characters), so bytes count deltas
// however the network groups them. The answer is split into windows of a
// tenth of its bytes each; if work per delta stayed proportional to the
// delta (not to the answer or the transcript), the last tenth costs what the
// first did.
//
//   cd end2end && BEDROCK_CHAT_E2E_BINARY=./target/release/bedrock-chat \
//     npx playwright test --config bench.config.ts markdown-stream

import { test, expect, type Page } from '@playwright/test';

/** 100 exchanges: a 200-message conversation before the long answer. */
const HISTORY_EXCHANGES = 100;
const ANSWER_BYTES = 100_000;
/** Characters per delta, and the simulator's pause between deltas. */
const CHUNK = 20;
const DELAY_MS = 2;
const WINDOWS = 10;

type Sample = { script: number; task: number; layout: number; style: number; chunks: number; bytes: number };

/** Stores 200 messages in one conversation, as the page's own user. */
async function seedConversation(page: Page): Promise<string> {
  let id: string | undefined;
  for (let i = 1; i <= HISTORY_EXCHANGES; i++) {
    const response = await page.request.post('/api/chat/stream', {
      data: {
        content: `History message ${i}: a question of moderate length about **topic ${i}**. [sim tokens=24]`,
        ...(id ? { conversation_id: id } : { settings: { max_tokens: 8192 } }),
      },
      headers: { accept: 'text/event-stream' },
      timeout: 30_000,
    });
    expect(response.status()).toBe(200);
    const body = await response.text();
    id ??= body.match(/"conversation_id":"([0-9a-f-]{36})"/)![1];
  }
  return id!;
}

test('client work per delta on a 100 KB answer in a 200-message conversation', async ({ page }) => {
  test.setTimeout(240_000);
  await page.goto('/');
  const id = await seedConversation(page);
  await page.goto(`/c/${id}`);
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  // The page opens at its newest 100 messages; the 100 before them are shown
  // too, so that the whole history is in the document as the answer grows.
  await page.getByRole('button', { name: /earlier messages/ }).click();
  await expect(page.locator('article.turn')).toHaveCount(2 * HISTORY_EXCHANGES);

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await cdp.send('Network.enable');
  let streamRequest: string | null = null;
  let chunks = 0;
  let bytes = 0;
  cdp.on('Network.requestWillBeSent', (e: any) => {
    if (e.request.url.endsWith('/api/chat/stream')) streamRequest = e.requestId;
  });
  cdp.on('Network.dataReceived', (e: any) => {
    if (e.requestId === streamRequest) {
      chunks += 1;
      bytes += e.dataLength;
    }
  });
  const sample = async (): Promise<Sample> => {
    const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
    const m = (name: string) => metrics.find((x) => x.name === name)?.value ?? 0;
    return {
      script: m('ScriptDuration'),
      task: m('TaskDuration'),
      layout: m('LayoutDuration'),
      style: m('RecalcStyleDuration'),
      chunks,
      bytes,
    };
  };

  const input = page.locator('textarea[aria-label="Message"]');
  await input.fill(`A long answer, please. [sim markdown=${ANSWER_BYTES} chunk=${CHUNK} delay_ms=${DELAY_MS}]`);
  const samples: Sample[] = [await sample()];
  await input.press('Enter');
  const answer = page.locator('article.turn.assistant').last();
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    await page.waitForTimeout(100);
    samples.push(await sample());
    if ((await answer.getAttribute('data-status')) !== 'streaming' && samples.length > 2) break;
  }
  await expect(answer).toHaveAttribute('data-status', 'complete');
  samples.push(await sample());

  // How many deltas there were: the stored answer's length over the chunk size.
  const stored = await (await page.request.get(`/api/conversations/${id}`)).json();
  const source: string = stored.messages.at(-1).content;
  const deltas = Math.ceil([...source].length / CHUNK);
  const total = samples.at(-1)!;
  const deltasPerChunk = deltas / total.chunks;
  const deltasPerByte = deltas / total.bytes;
  expect(source.length).toBeGreaterThanOrEqual(ANSWER_BYTES);
  await expect(answer.locator('.md-done .code-block').first()).toBeVisible();

  // Work per delta in each tenth of the stream's bytes.
  const rows: string[] = [];
  const perDelta: number[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const from = (w / WINDOWS) * total.bytes;
    const to = ((w + 1) / WINDOWS) * total.bytes;
    // From the first byte on: the send itself (a new turn, the request) is not a delta.
    const first = samples.find((s) => s.bytes >= Math.max(from, 1)) ?? samples[0];
    const last = [...samples].reverse().find((s) => s.bytes <= to) ?? total;
    const n = (last.bytes - first.bytes) * deltasPerByte;
    if (n <= 0) continue;
    const us = (seconds: number) => ((seconds * 1e6) / n).toFixed(1);
    perDelta.push((last.script - first.script) / n);
    const perChunk = (n / (last.chunks - first.chunks)).toFixed(1);
    rows.push(
      `  ${String(w * 10).padStart(3)}-${String((w + 1) * 10).padEnd(3)}%  ${String(Math.round(n)).padStart(5)} deltas ` +
        `(${perChunk.padStart(4)}/chunk)  ` +
        `script ${us(last.script - first.script).padStart(6)} µs  layout ${us(last.layout - first.layout).padStart(6)} µs  ` +
        `style ${us(last.style - first.style).padStart(6)} µs  main thread ${us(last.task - first.task).padStart(6)} µs`,
    );
  }
  const start = samples[0];
  console.log(
    [
      `markdown streaming: ${(source.length / 1000).toFixed(1)} KB answer in ${deltas} deltas of ${CHUNK} chars ` +
        `(${total.chunks} network chunks, ${deltasPerChunk.toFixed(2)} deltas per chunk), ` +
        `after ${2 * HISTORY_EXCHANGES} messages`,
      `client work per delta, by tenth of the answer:`,
      ...rows,
      `whole answer: script ${(((total.script - start.script) * 1e6) / deltas).toFixed(1)} µs/delta, ` +
        `main thread ${(((total.task - start.task) * 1e6) / deltas).toFixed(1)} µs/delta`,
      `last tenth / first tenth (script): ${(perDelta.at(-1)! / perDelta[0]).toFixed(2)}`,
    ].join('\n'),
  );
});
