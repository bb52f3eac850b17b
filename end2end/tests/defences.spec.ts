// The browser defences, in a real browser: a page on another origin cannot
// make a visitor's browser write to bedrock-chat, and a limit's refusal is
// shown as a sentence, not as a broken stream. (Every spec also runs under
// the Content Security Policy: support.ts fails a test on any violation.)

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, expect, openChat, sendMessage, sidebar, recordCspViolations, cspViolations } from './support';
import { BASE_URL } from '../playwright.config';

/** A page on another port of the same host (same site, another origin)
 * that tries, as an attacker's page would, to start an answer in the
 * visitor's account: a plain form post and a credentialed fetch. */
async function attackerSite(): Promise<{ url: string; close: () => Promise<void> }> {
  const page = `<!doctype html><meta charset="utf-8"><title>attacker</title>
<form id="f" method="POST" action="${BASE_URL}/api/chat/stream" enctype="text/plain" target="sink">
  <input name='{"content":"forged by a form","x":"' value='"}'>
</form>
<iframe name="sink"></iframe>
<script>
  window.results = [];
  fetch(${JSON.stringify(BASE_URL)} + '/api/chat/stream', {
    method: 'POST', credentials: 'include', mode: 'no-cors',
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify({ content: 'forged by fetch' }),
  }).then(() => window.results.push('fetch sent'), (e) => window.results.push('fetch failed'));
  document.getElementById('f').submit();
</script>`;
  const server = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('a page on another origin cannot start answers in the visitor account', async ({ page, context }) => {
  await openChat(page);
  const refused: number[] = [];
  context.on('response', (r) => {
    if (r.url().endsWith('/api/chat/stream')) refused.push(r.status());
  });
  const attacker = await attackerSite();
  try {
    const evil = await context.newPage();
    await evil.goto(attacker.url);
    await expect.poll(() => refused.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await evil.close();
  } finally {
    await attacker.close();
  }
  // Each attempt that reached the server was refused (415 or 403)...
  for (const status of refused) expect([403, 415]).toContain(status);
  // ...and the visitor's list of conversations is still empty.
  const list = await page.request.get('/api/conversations');
  expect(await list.json()).toEqual([]);
  await page.reload();
  await expect(sidebar(page).items).toHaveCount(0);
});

test('a limit refuses a message with a sentence the page shows', async ({ page }) => {
  const ui = await openChat(page);
  // Three answers being written at once (the default per-owner cap),
  // started from this browser with its cookie; each stays open.
  const answerIds: string[] = await page.evaluate(async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch('/api/chat/stream', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ content: `long ${i} [sim tokens=400 delay_ms=50]` }),
      });
      const reader = response.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      ids.push(JSON.parse(first.split('data: ')[1].split('\n')[0]).answer_id);
      (window as unknown as { keep: unknown[] }).keep = [
        ...((window as unknown as { keep?: unknown[] }).keep ?? []),
        reader,
      ];
    }
    return ids;
  });
  expect(answerIds).toHaveLength(3);

  await sendMessage(page, 'One more, please.');
  const answer = ui.answers.first();
  const alert = answer.locator('.state.error');
  await expect(alert).toBeVisible();
  await expect(alert).toHaveText(/already have 3 answers being written/);
  await expect(ui.send).toBeVisible();

  // Stopping them frees the slots: the next message is answered.
  for (const id of answerIds) {
    const stopped = await page.request.post(`/api/generations/${id}/cancel`);
    expect(stopped.status()).toBe(200);
  }
  await expect
    .poll(async () => {
      const r = await page.request.post('/api/chat/stream', { data: { content: 'after the stop [sim tokens=3]' } });
      return r.status();
    }, { timeout: 10_000 })
    .toBe(200);
});

test('the policy blocks a script injected into the page, and the suite would see it', async ({ context }) => {
  // A page of its own: the shared fixture fails any test with a violation.
  const page = await context.newPage();
  await recordCspViolations(page);
  const response = await page.goto('/');
  const policy = response?.headers()['content-security-policy'] ?? '';
  expect(policy).toContain("script-src 'self' 'nonce-");
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  const ran = await page.evaluate(() => {
    (window as unknown as { injected?: boolean }).injected = false;
    const script = document.createElement('script');
    script.textContent = 'window.injected = true';
    document.body.appendChild(script);
    return (window as unknown as { injected: boolean }).injected;
  });
  expect(ran).toBe(false);
  await expect.poll(() => cspViolations(page)).toEqual([expect.stringContaining('script-src')]);
  await page.close();
});
