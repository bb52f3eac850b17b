// Answers belong to the server: a page that loses its connection resumes the
// answer from the last event it saw, and Stop in one tab ends the answer in
// every tab.

import net from 'node:net';
import { test, expect, chat, openChat, sendMessage, textOf, fetchAnswer } from './support';
import { BASE_URL } from '../playwright.config';

/** A TCP relay in front of the app whose connections can be cut at will,
 * as a proxy or a dropped Wi-Fi link would. (Taking the browser offline
 * alone does not break a response already streaming.) */
async function cuttableProxy() {
  const target = new URL(BASE_URL);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', close);
      s.on('close', close);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cutAll: () => [...sockets].forEach((s) => s.destroy()),
    // The browser keeps idle connections open; cut them so close() ends.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        [...sockets].forEach((s) => s.destroy());
      }),
  };
}

test('the network drops mid-answer: the page resumes and completes it exactly once', async ({
  page,
  request,
}) => {
  const text = 'Keep going through the outage. [sim tokens=150 delay_ms=25]';
  const resumed: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/generations/') && r.url().includes('/events')) resumed.push(r.url());
  });

  const proxy = await cuttableProxy();
  await page.goto(proxy.url + '/');
  const ui = chat(page);
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await sendMessage(page, text);
  const answer = ui.answers.first();
  await expect(answer.locator('.text')).toHaveText(/\S+ \S+ \S+/);
  // The network goes away: offline, and the connection carrying the answer
  // is cut.
  await page.context().setOffline(true);
  proxy.cutAll();
  // The page says what is happening while it is cut off.
  await expect(answer.locator('.state.reconnecting')).toHaveText('Connection lost. Reconnecting…');
  await page.waitForTimeout(500);
  await expect(answer).toHaveAttribute('data-status', 'streaming');
  await page.context().setOffline(false);

  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(answer.locator('.state.reconnecting')).toHaveCount(0);
  expect(resumed.length, 'the page reconnected to the answer').toBeGreaterThan(0);
  expect(resumed[0]).toMatch(/last_event_id=\d+/);
  // Exactly the simulator's answer: nothing lost, nothing repeated.
  const expected = await fetchAnswer(request, text);
  expect(await textOf(answer)).toBe(expected.text);

  // And it is stored that way: a reload shows the same text.
  await page.reload();
  await expect(chat(page).main).toHaveAttribute('data-hydrated', 'true');
  expect(await textOf(chat(page).answers.first())).toBe(expected.text);
  await proxy.close();
});

test('a second tab follows the answer, and Stop in one tab stops it in both', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'A long one for two tabs. [sim tokens=600 delay_ms=25]');
  const first = ui.answers.first();
  await expect(first.locator('.text')).toHaveText(/\S/);
  await expect(page).toHaveURL(/\/c\//);

  const second = await page.context().newPage();
  await second.goto(page.url());
  await expect(chat(second).main).toHaveAttribute('data-hydrated', 'true');
  const mirror = chat(second).answers.first();
  await expect(mirror).toHaveAttribute('data-status', 'streaming');
  // The second tab sees the same answer growing.
  const early = (await textOf(mirror)).length;
  await expect.poll(async () => (await textOf(mirror)).length).toBeGreaterThan(early);

  await ui.stop.click();
  await expect(first).toHaveAttribute('data-status', 'stopped', { timeout: 5_000 });
  await expect(mirror).toHaveAttribute('data-status', 'stopped', { timeout: 5_000 });
  await expect(chat(second).send).toBeVisible();
  expect(await textOf(mirror)).toBe(await textOf(first));
  await second.close();
});

test('Retry after a stopped answer writes a new one and keeps the old', async ({ page, request }) => {
  const text = 'Try me twice. [sim tokens=80 delay_ms=20]';
  const ui = await openChat(page);
  await sendMessage(page, text);
  const first = ui.answers.first();
  await expect(first.locator('.text')).toHaveText(/\S/);
  await ui.stop.click();
  await expect(first).toHaveAttribute('data-status', 'stopped');

  const retry = page.locator('button.retry');
  await expect(retry).toHaveCount(1);
  await retry.click();
  const second = ui.answers.nth(1);
  await expect(second).toHaveAttribute('data-status', 'complete', { timeout: 10_000 });
  await expect(retry).toHaveCount(0);
  const expected = await fetchAnswer(request, text);
  expect(await textOf(second)).toBe(expected.text);

  await page.reload();
  await expect(chat(page).main).toHaveAttribute('data-hydrated', 'true');
  await expect(chat(page).answers).toHaveCount(2);
  await expect(chat(page).answers.first()).toHaveAttribute('data-status', 'stopped');
  expect(await textOf(chat(page).answers.nth(1))).toBe(expected.text);
});
