// Shared by the specs: a `page` that fails the test on uncaught errors or
// WASM panics, opening the chat, and asking the stream API directly for the
// answer the simulator gives to a conversation.

import { test as base, expect, type APIRequestContext, type Locator, type Page } from '@playwright/test';

export { expect };

export type Message = { role: 'user' | 'assistant'; content: string };

/** `page`, plus a check after each test that the page raised no uncaught
 * error and the WASM never panicked (console_error_panic_hook logs those). */
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /panicked|RuntimeError|hydration/i.test(msg.text())) {
        problems.push(`console.error: ${msg.text()}`);
      }
    });
    await use(page);
    expect(problems, 'errors raised in the page').toEqual([]);
  },
});

export const chat = (page: Page) => ({
  main: page.locator('main.chat'),
  input: page.locator('textarea[aria-label="Message"]'),
  send: page.locator('button.send'),
  stop: page.locator('button.stop'),
  turns: page.locator('article.turn'),
  users: page.locator('article.turn.user'),
  answers: page.locator('article.turn.assistant'),
});

/** Opens the page and waits until the WASM has hydrated it. */
export async function openChat(page: Page) {
  await page.goto('/');
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  return chat(page);
}

/** Types `text` into the composer (as one input event) and presses Enter. */
export async function sendMessage(page: Page, text: string) {
  const { input } = chat(page);
  await input.fill(text);
  await input.press('Enter');
}

/** The text of a turn's `.text` element, exactly as the DOM holds it. */
export function textOf(turn: Locator): Promise<string> {
  return turn.locator('.text').evaluate((el) => el.textContent ?? '');
}

export type StreamResult = { text: string; events: { event: string; data: any }[]; status: number };

/** Sends `messages` to the stream API and returns the concatenated `delta`
 * texts (the answer the page should show) and every event. */
export async function fetchAnswer(
  request: APIRequestContext,
  messages: Message[],
  modelId?: string,
): Promise<StreamResult> {
  const response = await request.post('/api/chat/stream', {
    data: { ...(modelId ? { model_id: modelId } : {}), messages },
    headers: { accept: 'text/event-stream' },
    timeout: 30_000,
  });
  const body = await response.text();
  const events = parseSse(body);
  const text = events
    .filter((e) => e.event === 'delta')
    .map((e) => e.data.text as string)
    .join('');
  return { text, events, status: response.status() };
}

/** Minimal SSE parser: blank-line separated events of `event:`/`data:` lines. */
function parseSse(body: string): { event: string; data: any }[] {
  const out: { event: string; data: any }[] = [];
  for (const block of body.replace(/\r\n?/g, '\n').split('\n\n')) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) out.push({ event, data: JSON.parse(data.join('\n')) });
  }
  return out;
}

/** The model currently chosen in the picker. */
export function selectedModel(page: Page): Promise<string> {
  return page.locator('select[aria-label="Model"]').inputValue();
}
