// Shared by the specs: a `page` that fails the test on uncaught errors or
// WASM panics, opening the chat, the sidebar's parts, and asking the stream
// API directly for the answer the simulator gives to a conversation.

import { test as base, expect, type APIRequestContext, type Locator, type Page } from '@playwright/test';

export { expect };

/** Collects the uncaught errors and WASM panics (console_error_panic_hook
 * logs those) of `page`, hydration warnings, and every Content Security
 * Policy violation (Chromium reports each on the console). */
export function watchErrors(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /panicked|RuntimeError|hydration|Content Security Policy/i.test(msg.text())) {
      problems.push(`console.error: ${msg.text()}`);
    }
  });
  return problems;
}

/** Records `securitypolicyviolation` events in the page (read back by
 * `cspViolations`). */
const RECORD_CSP_VIOLATIONS = () => {
  const seen: string[] = [];
  (window as unknown as { __cspViolations: string[] }).__cspViolations = seen;
  document.addEventListener('securitypolicyviolation', (e) => {
    seen.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
  });
};

/** Makes `page` record its CSP violations from its next load on. */
export async function recordCspViolations(page: Page) {
  await page.addInitScript(RECORD_CSP_VIOLATIONS);
}

/** The CSP violations the page has seen since it loaded. */
export async function cspViolations(page: Page): Promise<string[]> {
  if (page.isClosed()) return [];
  return page
    .evaluate(() => (window as unknown as { __cspViolations?: string[] }).__cspViolations ?? [])
    .catch(() => []);
}

/** `page`, plus a check after each test that the page raised no uncaught
 * error, the WASM never panicked and the Content Security Policy blocked
 * nothing. */
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const problems = watchErrors(page);
    await recordCspViolations(page);
    await use(page);
    problems.push(...(await cspViolations(page)).map((v) => `CSP violation: ${v}`));
    expect(problems, 'errors raised in the page').toEqual([]);
  },
});

/** Makes the fetch of a split module (`split_*.wasm`, or a `chunk_*.wasm`
 * split modules share) fail, as a lost network does. */
export async function failToFetch(page: Page, module: RegExp) {
  // (Unrouted meanwhile: the fetch goes through, which is what a test that
  // lifts the failure wants.)
  await page.route(module, (route) => route.abort().catch(() => {}));
}

/** Holds every fetch of `module` until the returned function is called:
 * a slow network, as long as a test needs. */
export async function holdFetches(page: Page, module: RegExp): Promise<() => void> {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(module, async (route) => {
    await held;
    await route.continue();
  });
  return release;
}

/** The paths of the WebAssembly modules `page` fetches from now on. */
export function wasmFetchedBy(page: Page): string[] {
  const modules: string[] = [];
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('.wasm')) modules.push(path);
  });
  return modules;
}

export const chat = (page: Page) => ({
  main: page.locator('main.chat'),
  input: page.locator('textarea[aria-label="Message"]'),
  send: page.locator('button.send'),
  stop: page.locator('button.stop'),
  turns: page.locator('article.turn'),
  users: page.locator('article.turn.user'),
  answers: page.locator('article.turn.assistant'),
});

/** The list of conversations. */
export const sidebar = (page: Page) => {
  const nav = page.locator('nav.sidebar[aria-label="Conversations"]');
  return {
    nav,
    newChat: nav.locator('a.new-chat'),
    items: nav.locator('ul.conversation-list > li.conversation'),
    item: (id: string) => nav.locator(`li.conversation[data-id="${id}"]`),
    note: nav.locator('.sidebar-note'),
  };
};

/** A conversation page's URL (or path): `/c/<uuid>`. */
export const CONVERSATION_PATH = /\/c\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The id of the conversation the page's URL names (fails if it names none). */
export function conversationIdOf(page: Page): string {
  const match = new URL(page.url()).pathname.match(CONVERSATION_PATH);
  expect(match, `a conversation URL, not ${page.url()}`).not.toBeNull();
  return match![1];
}

/** Opens `path` (the new chat by default) and waits until the WASM has
 * hydrated the page. */
export async function openChat(page: Page, path = '/') {
  await page.goto(path);
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  return chat(page);
}

/** Types `text` into the composer (as one input event) and presses Enter. */
export async function sendMessage(page: Page, text: string) {
  const { input } = chat(page);
  await input.fill(text);
  await input.press('Enter');
}

/** The text of a turn's `.text` element, as the DOM holds it. A user's
 * message is exactly what was typed; an answer is rendered Markdown, whose
 * blocks end with a line break and whose paragraphs drop trailing spaces, so
 * its text is compared without trailing white space (see `shown`). */
export async function textOf(turn: Locator): Promise<string> {
  // An answer's text may be in several parts (around tool cards), or none yet.
  const parts = await turn.locator('.text').evaluateAll((els) =>
    els.map((el) => {
      const text = el.textContent ?? '';
      return el.classList.contains('markdown') ? text.trimEnd() : text;
    }),
  );
  return parts.join('');
}

/** An answer's source text as the page shows it, for plain-prose answers
 * (the simulator's default): Markdown keeps the words, not trailing spaces. */
export function shown(source: string): string {
  return source.trimEnd();
}

export type StreamEventData = { event: string; data: any };

export type StreamResult = {
  /** The concatenated `delta` texts as the page shows them (`shown`). */
  text: string;
  events: StreamEventData[];
  status: number;
  /** From the `start` event (absent when the request was refused before it
   * was stored, e.g. a validation error answered with HTTP 4xx). */
  conversationId?: string;
  title?: string;
  /** The JSON error body of a request refused with an HTTP error. */
  error?: { code: string; message: string; retryable: boolean };
};

/** Sends one user message to the stream API, in a new conversation or
 * continuing `conversationId`, and returns the answer and every event.
 *
 * The `request` fixture has its own cookie jar, so it is a different user
 * from the page's browser context: what it stores never shows in the page.
 * The simulator's answer depends only on the conversation's texts, so asking
 * it the same messages reproduces what the page was shown. */
export async function fetchAnswer(
  request: APIRequestContext,
  content: string,
  options: { conversationId?: string; modelId?: string } = {},
): Promise<StreamResult> {
  const response = await request.post('/api/chat/stream', {
    data: {
      content,
      ...(options.conversationId ? { conversation_id: options.conversationId } : {}),
      ...(options.modelId ? { model_id: options.modelId } : {}),
    },
    headers: { accept: 'text/event-stream' },
    timeout: 30_000,
  });
  const body = await response.text();
  if (!response.ok()) {
    return { text: '', events: [], status: response.status(), error: JSON.parse(body).error };
  }
  const events = parseSse(body);
  const text = shown(
    events
      .filter((e) => e.event === 'delta')
      .map((e) => e.data.text as string)
      .join(''),
  );
  const start = events.find((e) => e.event === 'start')?.data;
  return { text, events, status: response.status(), conversationId: start?.conversation_id, title: start?.title };
}

/** Sends `messages` one after another in one new conversation (through the
 * API, as another user) and returns every answer, in order. */
export async function fetchAnswers(
  request: APIRequestContext,
  messages: string[],
  modelId?: string,
): Promise<StreamResult[]> {
  const results: StreamResult[] = [];
  let conversationId: string | undefined;
  for (const content of messages) {
    const result = await fetchAnswer(request, content, { conversationId, modelId });
    expect(result.status, `answer to ${JSON.stringify(content)}`).toBe(200);
    conversationId = result.conversationId;
    results.push(result);
  }
  return results;
}

/** Minimal SSE parser: blank-line separated events of `event:`/`data:` lines. */
function parseSse(body: string): StreamEventData[] {
  const out: StreamEventData[] = [];
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
