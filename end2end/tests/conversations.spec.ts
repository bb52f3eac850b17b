// Stored conversations in a real browser: each message is kept on the server,
// listed in the sidebar, addressed by /c/<id>, rendered by the server on
// reload, renamed and deleted in place, and private to the browser (the owner
// is an anonymous cookie, so each browser context is another user).

import type { Browser, BrowserContext, Page } from '@playwright/test';
import {
  test,
  expect,
  chat,
  conversationIdOf,
  fetchAnswers,
  openChat,
  selectedModel,
  sendMessage,
  sidebar,
  textOf,
  watchErrors,
  CONVERSATION_PATH,
} from './support';

const FIRST = 'Plan a picnic by the river';
const SECOND = 'Explain how tides work';

/** Sends `text` and waits for its answer (the last one on screen) to end
 * with `status`. Returns the answer's text. */
async function ask(page: Page, text: string, status = 'complete'): Promise<string> {
  const ui = chat(page);
  const before = await ui.answers.count();
  await sendMessage(page, text);
  await expect(ui.answers).toHaveCount(before + 1);
  const answer = ui.answers.nth(before);
  await expect(answer).toHaveAttribute('data-status', status, { timeout: 15_000 });
  return textOf(answer);
}

/** The ids of the listed conversations, top to bottom. */
async function listedIds(page: Page): Promise<string[]> {
  return sidebar(page).items.evaluateAll((items) => items.map((li) => li.getAttribute('data-id') ?? ''));
}

/** Checks that the page shows exactly this transcript: user and assistant
 * turns alternating, every answer with `status`. */
async function expectTranscript(page: Page, pairs: [string, string][], status = 'complete') {
  const ui = chat(page);
  await expect(ui.turns).toHaveCount(pairs.length * 2);
  for (const [i, [question, answer]] of pairs.entries()) {
    const user = ui.turns.nth(2 * i);
    const assistant = ui.turns.nth(2 * i + 1);
    await expect(user).toHaveClass(/\buser\b/);
    await expect(assistant).toHaveClass(/\bassistant\b/);
    await expect(user.locator('.text')).toHaveText(question, { useInnerText: true });
    expect(await textOf(user)).toBe(question);
    await expect(assistant).toHaveAttribute('data-status', status);
    expect(await textOf(assistant)).toBe(answer);
  }
}

/** The header and the document title name the conversation (or "New chat").
 * The server renders the header; the page sets the document title (the
 * server's `<title>` is always "bedrock-chat", see `noScript` below). */
async function expectTitle(page: Page, title: string | null, { scripted = true } = {}) {
  await expect(page.locator('h1.conversation-title')).toHaveText(title ?? 'New chat');
  const documentTitle = title === null || !scripted ? 'bedrock-chat' : `${title} · bedrock-chat`;
  await expect(page).toHaveTitle(documentTitle);
}

/** A context that shares `page`'s cookie (the same user) but runs no
 * script: what it shows is exactly the HTML the server rendered. */
async function serverRenderedView(browser: Browser, page: Page): Promise<BrowserContext> {
  return browser.newContext({
    javaScriptEnabled: false,
    storageState: await page.context().storageState(),
  });
}

/** Creates the two conversations most tests start from, in this order. */
async function twoConversations(page: Page) {
  await openChat(page);
  const firstAnswer = await ask(page, FIRST);
  await expect(page).toHaveURL(CONVERSATION_PATH);
  const first = conversationIdOf(page);
  await sidebar(page).newChat.click();
  await expect(page).toHaveURL('/');
  await expect(chat(page).turns).toHaveCount(0);
  const secondAnswer = await ask(page, SECOND);
  await expect(page).toHaveURL(CONVERSATION_PATH);
  const second = conversationIdOf(page);
  expect(second).not.toBe(first);
  return { first, second, firstAnswer, secondAnswer };
}

test('messages start conversations that are listed, switched between, and server-rendered on reload', async ({
  page,
  request,
  browser,
}) => {
  const ui = await openChat(page);
  const side = sidebar(page);
  await expect(side.items).toHaveCount(0);
  await expect(side.note).toHaveText('Your conversations will appear here.');
  await expectTitle(page, null);

  // The first message names the conversation and gives it a URL; the
  // answer is not interrupted by the URL change.
  await sendMessage(page, FIRST);
  await expect(page).toHaveURL(CONVERSATION_PATH);
  const first = conversationIdOf(page);
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  const firstAnswer = await textOf(ui.answers.first());
  await expect(side.items).toHaveCount(1);
  await expect(side.item(first)).toHaveClass(/\bactive\b/);
  await expect(side.item(first).locator('a.conversation-link')).toHaveText(FIRST);
  await expect(side.item(first).locator('a.conversation-link')).toHaveAttribute('href', `/c/${first}`);
  await expect(side.item(first).locator('a.conversation-link')).toHaveAttribute('aria-current', 'page');
  await expectTitle(page, FIRST);

  // The simulator's answers are a function of the conversation.
  const model = await selectedModel(page);
  const [expectedFirst] = await fetchAnswers(request, [FIRST], model);
  expect(firstAnswer).toBe(expectedFirst.text);
  expect(firstAnswer.startsWith(`Demo answer to message 1 of 1. You said: "${FIRST}".`)).toBe(true);

  // "New chat" empties the page; the next message starts another one.
  await side.newChat.click();
  await expect(page).toHaveURL('/');
  await expect(ui.turns).toHaveCount(0);
  await expect(page.locator('.empty-state')).toBeVisible();
  await expectTitle(page, null);
  await expect(side.nav.locator('li.conversation.active')).toHaveCount(0);
  const secondAnswer = await ask(page, SECOND);
  await expect(page).toHaveURL(CONVERSATION_PATH);
  const second = conversationIdOf(page);
  expect(second).not.toBe(first);
  const [expectedSecond] = await fetchAnswers(request, [SECOND], model);
  expect(secondAnswer).toBe(expectedSecond.text);

  // Newest first, each titled from its first message; only one is active.
  await expect(side.items).toHaveCount(2);
  expect(await listedIds(page)).toEqual([second, first]);
  await expect(side.items.locator('a.conversation-link')).toHaveText([SECOND, FIRST]);
  await expect(side.item(second)).toHaveClass(/\bactive\b/);
  await expect(side.item(first)).not.toHaveClass(/\bactive\b/);
  await expectTitle(page, SECOND);

  // Switching through the sidebar swaps the transcript without a reload.
  await page.evaluate(() => ((window as any).__samePage = true));
  await side.item(first).locator('a.conversation-link').click();
  await expect(page).toHaveURL(`/c/${first}`);
  await expectTranscript(page, [[FIRST, firstAnswer]]);
  await expect(side.item(first)).toHaveClass(/\bactive\b/);
  await expect(side.item(second)).not.toHaveClass(/\bactive\b/);
  await expectTitle(page, FIRST);
  await side.item(second).locator('a.conversation-link').click();
  await expect(page).toHaveURL(`/c/${second}`);
  await expectTranscript(page, [[SECOND, secondAnswer]]);
  await expectTitle(page, SECOND);
  expect(await page.evaluate(() => (window as any).__samePage)).toBe(true);

  // A follow-up continues the conversation on screen (message 3 of 3) and
  // moves it to the top of the list.
  await side.item(first).locator('a.conversation-link').click();
  await expectTranscript(page, [[FIRST, firstAnswer]]);
  const FOLLOW_UP = 'And if it rains?';
  const followAnswer = await ask(page, FOLLOW_UP);
  await expect(page).toHaveURL(`/c/${first}`);
  expect(followAnswer.startsWith(`Demo answer to message 3 of 3. You said: "${FOLLOW_UP}".`)).toBe(true);
  const [, expectedFollow] = await fetchAnswers(request, [FIRST, FOLLOW_UP], model);
  expect(followAnswer).toBe(expectedFollow.text);
  await expect.poll(() => listedIds(page)).toEqual([first, second]);
  await expect(side.items.locator('a.conversation-link')).toHaveText([FIRST, SECOND]);

  // The server renders the whole conversation into the page: the HTML of a
  // plain GET (same cookie) holds the transcript and its statuses...
  const response = await page.request.get(`/c/${first}`);
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain(`<h1 class="conversation-title">${FIRST}`);
  expect(html).toContain(`<div class="text">${FOLLOW_UP}`);
  expect(html.match(/<article [^>]*data-status="complete"[^>]*>/g)).toHaveLength(4);
  expect(html).toContain(`data-id="${second}"`);
  expect(html).not.toContain('Loading the conversation');

  // ...and a browser without script shows it exactly.
  const noScript = await serverRenderedView(browser, page);
  try {
    const plain = await noScript.newPage();
    await plain.goto(`/c/${first}`);
    await expect(plain.locator('main.chat')).toHaveAttribute('data-hydrated', 'false');
    await expectTranscript(plain, [
      [FIRST, firstAnswer],
      [FOLLOW_UP, followAnswer],
    ]);
    await expect(chat(plain).answers.locator('.state.usage')).toHaveCount(2);
    await expectTitle(plain, FIRST, { scripted: false });
    expect(await listedIds(plain)).toEqual([first, second]);
    await expect(sidebar(plain).item(first)).toHaveClass(/\bactive\b/);
  } finally {
    await noScript.close();
  }

  // Reloading hydrates that HTML without errors and keeps every part of it.
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  await expectTranscript(page, [
    [FIRST, firstAnswer],
    [FOLLOW_UP, followAnswer],
  ]);
  await expect(ui.answers.locator('.state.usage')).toHaveCount(2);
  await expectTitle(page, FIRST);
  expect(await listedIds(page)).toEqual([first, second]);
  await expect(side.item(first)).toHaveClass(/\bactive\b/);
  // The model the conversation used is selected again.
  expect(await selectedModel(page)).toBe(model);

  // And it still works after hydration: continue it.
  const LAST = 'Thanks!';
  const lastAnswer = await ask(page, LAST);
  expect(lastAnswer.startsWith(`Demo answer to message 5 of 5. You said: "${LAST}".`)).toBe(true);
});

test('messages opened by address come as HTML only, and stay through hydration, the renderer, the editor and a switch', async ({
  page,
}) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Write it up [sim markdown=1500]');
  await expect(ui.answers.first()).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  const id = conversationIdOf(page);
  // Several lines, markup and spaces at the ends: the editor gets them
  // back from the page exactly.
  const question = '  Use a <b>tool</b> & then\n\nsay so  [sim call=calculator:{"expression":"6*7"}]';
  await sendMessage(page, question);
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });

  // The page carries each message once: as HTML, not also as data.
  const html = await (await page.request.get(`/c/${id}`)).text();
  expect(html).toContain('This part explains <strong>');
  expect(html).not.toContain('This part explains **');
  expect(html).toContain('Use a &lt;b&gt;tool&lt;/b&gt; &amp; then');
  expect(html).not.toContain('Use a <b>');

  await openChat(page, `/c/${id}`);
  const written = ui.answers.first().locator('.md-done');
  const tool = ui.answers.nth(1);
  const served = await written.innerHTML();
  expect(served).toContain('This part explains <strong>');
  await expect(tool.locator('.tool-card')).toHaveCount(1);
  const toolText = await textOf(tool);
  expect(toolText).not.toBe('');

  // A new answer formatted means the renderer is loaded: the stored ones
  // are still the server's HTML.
  await sendMessage(page, 'More **bold** [sim echo]');
  await expect(ui.answers.nth(2).locator('.md-done strong')).toHaveText('bold', { timeout: 20_000 });
  expect(await written.innerHTML()).toBe(served);
  expect(await textOf(tool)).toBe(toolText);

  // The editor opens with the user's words, read from the page.
  for (const [n, words] of [
    [0, 'Write it up [sim markdown=1500]'],
    [1, question],
  ] as const) {
    const user = ui.users.nth(n);
    expect(await textOf(user)).toBe(words);
    await user.hover();
    await user.locator('button.edit-message').click();
    await expect(user.locator('form.edit-form textarea')).toHaveValue(words);
    await user.locator('form.edit-form textarea').press('Escape');
    await expect(user.locator('form.edit-form')).toHaveCount(0);
  }

  // Away and back: drawn in the browser from the API, whole.
  await sidebar(page).newChat.click();
  await expect(ui.turns).toHaveCount(0);
  await sidebar(page).item(id).locator('a.conversation-link').click();
  await expect(ui.answers.first().locator('.md-done strong').first()).toBeVisible();
  await expect(ui.answers.first().locator('.md-done')).toContainText('This part explains');
  expect(await textOf(ui.answers.nth(1))).toBe(toolText);
  expect(await textOf(ui.users.nth(1))).toBe(question);
});

test('Back and Forward move between conversations with the right transcript', async ({ page }) => {
  const { first, second, firstAnswer, secondAnswer } = await twoConversations(page);
  const side = sidebar(page);
  // History: /c/first (it replaced "/"), /c/second (it replaced the second
  // "/"), then /c/first again from the sidebar.
  await side.item(first).locator('a.conversation-link').click();
  await expect(page).toHaveURL(`/c/${first}`);
  await expectTranscript(page, [[FIRST, firstAnswer]]);

  await page.goBack();
  await expect(page).toHaveURL(`/c/${second}`);
  await expectTranscript(page, [[SECOND, secondAnswer]]);
  await expectTitle(page, SECOND);
  await expect(side.item(second)).toHaveClass(/\bactive\b/);

  await page.goBack();
  await expect(page).toHaveURL(`/c/${first}`);
  await expectTranscript(page, [[FIRST, firstAnswer]]);
  await expectTitle(page, FIRST);
  await expect(side.item(first)).toHaveClass(/\bactive\b/);

  await page.goForward();
  await expect(page).toHaveURL(`/c/${second}`);
  await expectTranscript(page, [[SECOND, secondAnswer]]);

  await page.goForward();
  await expect(page).toHaveURL(`/c/${first}`);
  await expectTranscript(page, [[FIRST, firstAnswer]]);
  await expectTitle(page, FIRST);
});

test('renaming in place: Escape cancels, Enter saves, and the title lasts', async ({ page }) => {
  const { first, second } = await twoConversations(page);
  const side = sidebar(page);
  const item = side.item(second);
  const form = item.locator('form.rename-form');
  const input = form.getByRole('textbox', { name: 'Conversation title' });

  // Escape leaves everything as it was.
  await item.hover();
  await item.getByRole('button', { name: `Rename “${SECOND}”` }).click();
  await expect(form).toBeVisible();
  await expect(input).toBeFocused();
  await expect(input).toHaveValue(SECOND);
  await input.fill('Not this');
  await input.press('Escape');
  await expect(form).toHaveCount(0);
  await expect(item.locator('a.conversation-link')).toHaveText(SECOND);
  // The focus goes back to the button that opened the form.
  await expect(item.getByRole('button', { name: `Rename “${SECOND}”` })).toBeFocused();
  await expectTitle(page, SECOND);

  // Opening it again starts from the current title, not the abandoned text.
  await item.getByRole('button', { name: `Rename “${SECOND}”` }).click();
  await expect(input).toHaveValue(SECOND);
  await expect(input).toBeFocused();
  const RENAMED = 'Tides & the moon <notes>';
  await input.fill(RENAMED);
  await input.press('Enter');
  await expect(form).toHaveCount(0);
  await expect(item.locator('a.conversation-link')).toHaveText(RENAMED);
  // The open conversation's header and document title follow.
  await expectTitle(page, RENAMED);
  // The focus is where the user was: on the renamed item's Rename button.
  await expect(item.getByRole('button', { name: `Rename “${RENAMED}”` })).toBeFocused();
  await expect(side.item(first).locator('a.conversation-link')).toHaveText(FIRST);

  // Stored: the API, a reload and the server-rendered page all have it.
  const stored = await (await page.request.get(`/api/conversations/${second}`)).json();
  expect(stored.title).toBe(RENAMED);
  await page.reload();
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expect(side.item(second).locator('a.conversation-link')).toHaveText(RENAMED);
  await expectTitle(page, RENAMED);
  const html = await (await page.request.get(`/c/${second}`)).text();
  expect(html).toContain('<h1 class="conversation-title">Tides &amp; the moon &lt;notes&gt;');

  // Renaming another conversation leaves the open one's header alone.
  const other = side.item(first);
  await other.hover();
  await other.getByRole('button', { name: `Rename “${FIRST}”` }).click();
  await other.getByRole('textbox', { name: 'Conversation title' }).fill('Picnic');
  await other.getByRole('button', { name: 'Save' }).click();
  await expect(other.locator('a.conversation-link')).toHaveText('Picnic');
  await expectTitle(page, RENAMED);

  // An empty title is refused with the server's message; the form stays.
  await other.getByRole('button', { name: 'Rename “Picnic”' }).click();
  const otherInput = other.getByRole('textbox', { name: 'Conversation title' });
  await otherInput.fill('   ');
  await otherInput.press('Enter');
  await expect(other.locator('.sidebar-note.error')).toHaveText(
    'The title is empty. Type a name for the conversation.',
  );
  await expect(other.locator('form.rename-form')).toBeVisible();
  await otherInput.press('Escape');
  await expect(other.locator('.sidebar-note.error')).toHaveCount(0);
  await expect(other.locator('a.conversation-link')).toHaveText('Picnic');
});

test('deleting asks first; deleting the open conversation goes to a new chat', async ({ page }) => {
  const { first, second, secondAnswer } = await twoConversations(page);
  const side = sidebar(page);
  const firstItem = side.item(first);
  const confirm = firstItem.getByRole('alertdialog', { name: 'Delete conversation' });

  // Cancel keeps it.
  await firstItem.hover();
  await firstItem.getByRole('button', { name: `Delete “${FIRST}”` }).click();
  await expect(confirm).toBeVisible();
  await expect(confirm).toContainText(`Delete “${FIRST}”? This cannot be undone.`);
  await expect(confirm.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(confirm).toHaveCount(0);
  await expect(side.items).toHaveCount(2);

  // One form at a time: renaming another conversation closes a confirmation.
  await firstItem.getByRole('button', { name: `Delete “${FIRST}”` }).click();
  await expect(confirm).toBeVisible();
  await side.item(second).hover();
  await side.item(second).getByRole('button', { name: `Rename “${SECOND}”` }).click();
  await expect(confirm).toHaveCount(0);
  const rename = side.item(second).getByRole('textbox', { name: 'Conversation title' });
  await expect(rename).toBeFocused();
  await rename.press('Escape');
  await expect(side.nav.locator('form.rename-form, .confirm')).toHaveCount(0);
  expect((await page.request.get(`/api/conversations/${first}`)).status()).toBe(200);

  // Delete removes it; the conversation on screen stays.
  await firstItem.getByRole('button', { name: `Delete “${FIRST}”` }).click();
  await confirm.locator('button.confirm-delete').click();
  await expect(firstItem).toHaveCount(0);
  await expect(side.items).toHaveCount(1);
  // The focus moves to the conversation that took its place in the list.
  await expect(side.item(second).locator('a.conversation-link')).toBeFocused();
  await expect(page).toHaveURL(`/c/${second}`);
  await expectTranscript(page, [[SECOND, secondAnswer]]);
  expect((await page.request.get(`/api/conversations/${first}`)).status()).toBe(404);

  // Deleting the open one leaves a new chat.
  const secondItem = side.item(second);
  await secondItem.hover();
  await secondItem.getByRole('button', { name: `Delete “${SECOND}”` }).click();
  await secondItem.locator('button.confirm-delete').click();
  await expect(page).toHaveURL('/');
  await expect(side.items).toHaveCount(0);
  await expect(side.note).toHaveText('Your conversations will appear here.');
  // None is left: the focus goes to New chat.
  await expect(side.newChat).toBeFocused();
  await expect(chat(page).turns).toHaveCount(0);
  await expect(page.locator('.empty-state')).toBeVisible();
  await expectTitle(page, null);
  expect(await (await page.request.get('/api/conversations')).json()).toEqual([]);

  // Its old URL now says it is gone.
  const response = await page.goto(`/c/${second}`);
  expect(response?.status()).toBe(404);
  await expect(page.locator('.load-error')).toContainText('does not exist or was deleted');

  // The page still works: a new message starts a new conversation.
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await page.locator('.load-error a').click();
  await expect(page).toHaveURL('/');
  await expect(page.locator('.load-error')).toHaveCount(0);
  await ask(page, 'Start over');
  await expect(page).toHaveURL(CONVERSATION_PATH);
  await expect(side.items).toHaveCount(1);
});

test('another browser (another user) sees none of them', async ({ page, browser }) => {
  const { first } = await twoConversations(page);

  const stranger = await browser.newContext();
  try {
    const theirs = await stranger.newPage();
    const problems = watchErrors(theirs);
    await openChat(theirs);
    await expect(sidebar(theirs).items).toHaveCount(0);
    await expect(sidebar(theirs).note).toHaveText('Your conversations will appear here.');
    expect(await (await theirs.request.get('/api/conversations')).json()).toEqual([]);

    // The first user's URL: the same answer as for a conversation that
    // never existed, rendered by the server and after hydration.
    const response = await theirs.goto(`/c/${first}`);
    expect(response?.status()).toBe(404);
    const error = theirs.locator('.load-error[role="alert"]');
    await expect(error).toContainText('does not exist or was deleted');
    await expect(theirs.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
    await expect(error).toContainText('does not exist or was deleted');
    await expect(chat(theirs).turns).toHaveCount(0);
    await expect(theirs.locator('h1.conversation-title')).toHaveText('New chat');
    expect((await theirs.request.get(`/api/conversations/${first}`)).status()).toBe(404);
    expect(problems).toEqual([]);
  } finally {
    await stranger.close();
  }

  // The owner still has both.
  await expect(sidebar(page).items).toHaveCount(2);
});

test('a stopped answer reloads as "Stopped" with its partial text', async ({ page, browser }) => {
  const ui = await openChat(page);
  await sendMessage(page, 'Write at length. [sim tokens=500 delay_ms=30]');
  const answer = ui.answers.first();
  await expect(answer.locator('.text')).toHaveText(/\S/);
  await expect(page).toHaveURL(CONVERSATION_PATH);
  const id = conversationIdOf(page);
  await ui.stop.click();
  await expect(answer).toHaveAttribute('data-status', 'stopped');
  const shown = await textOf(answer);

  // The server stores the answer as far as it got when the browser left.
  await expect
    .poll(async () => (await (await page.request.get(`/api/conversations/${id}`)).json()).messages[1].status)
    .toBe('stopped');
  const stored = (await (await page.request.get(`/api/conversations/${id}`)).json()).messages[1];
  // It may hold a few pieces that were in flight when Stop was pressed.
  expect(stored.content.startsWith(shown)).toBe(true);
  expect(stored.content.split(/\s+/).filter(Boolean).length).toBeLessThan(400);

  for (const view of ['server', 'hydrated'] as const) {
    let context: BrowserContext | null = null;
    let target = page;
    if (view === 'server') {
      context = await serverRenderedView(browser, page);
      target = await context.newPage();
      await target.goto(`/c/${id}`);
    } else {
      await page.reload();
      await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
    }
    const reloaded = chat(target).answers.first();
    await expect(reloaded).toHaveAttribute('data-status', 'stopped');
    await expect(reloaded.locator('.state.stopped')).toHaveText('Stopped');
    await expect(reloaded.locator('.state.streaming')).toHaveCount(0);
    // Markdown keeps the words, not the trailing space.
    expect(await textOf(reloaded)).toBe(stored.content.trimEnd());
    await context?.close();
  }
  await expect(ui.send).toBeVisible();
  await expect(ui.stop).toHaveCount(0);
});

test('the stream API takes one message and a conversation id, not a history', async ({ request }) => {
  // The old request shape is refused before anything is stored.
  const old = await request.post('/api/chat/stream', {
    data: { messages: [{ role: 'user', content: 'Hello' }] },
  });
  expect(old.status()).toBe(400);
  expect((await old.json()).error.code).toBe('malformed_json');
  expect(await (await request.get('/api/conversations')).json()).toEqual([]);

  const [one, two] = await fetchAnswers(request, ['Hello', 'Again']);
  const start = one.events[0];
  expect(start.event).toBe('start');
  expect(start.data).toMatchObject({ title: 'Hello', created: true });
  expect(two.events[0].data).toMatchObject({ conversation_id: one.conversationId, created: false });
  expect(two.text.startsWith('Demo answer to message 3 of 3. You said: "Again".')).toBe(true);
  const list = await (await request.get('/api/conversations')).json();
  expect(list.map((c: { id: string }) => c.id)).toEqual([one.conversationId]);
});

test('a title that tries to close <title> is only ever text', async ({ page, browser }) => {
  // leptos_meta writes <title> unescaped, so the server never puts a
  // conversation's title there; the page sets document.title as text.
  // (Titles made from a first message are cut at 60 characters.)
  const TITLE = '</title><script>window.__pwned=1</script>';
  await openChat(page);
  await ask(page, TITLE);
  const id = conversationIdOf(page);
  await expectTitle(page, TITLE);

  const html = await (await page.request.get(`/c/${id}`)).text();
  expect(html).not.toContain('<script>window.__pwned');
  expect(html).toContain('<title>bedrock-chat</title>');

  await page.reload();
  await expect(page.locator('main.chat')).toHaveAttribute('data-hydrated', 'true');
  await expectTitle(page, TITLE);
  await expect(sidebar(page).item(id).locator('a.conversation-link')).toHaveText(TITLE);
  expect(await textOf(chat(page).users.first())).toBe(TITLE);
  await page.waitForLoadState('load');
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
  await expect(page.locator('main script, nav script')).toHaveCount(0);
});

test('an open rename form survives the list being refreshed by an answer ending', async ({ page }) => {
  const { first } = await twoConversations(page);
  const ui = chat(page);
  // A slow answer in the conversation on screen (the second): when it ends
  // the list is reloaded (its order may change).
  await sendMessage(page, 'Take your time. [sim tokens=40 delay_ms=60]');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'streaming');

  const item = sidebar(page).item(first);
  await item.hover();
  await item.getByRole('button', { name: `Rename “${FIRST}”` }).click();
  const input = item.getByRole('textbox', { name: 'Conversation title' });
  await input.fill('Half-typed title');
  await expect(ui.answers.nth(1)).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  // Let the list reload after the answer's end.
  await expect.poll(() => page.evaluate(() => document.querySelectorAll('li.conversation').length)).toBe(2);
  await page.waitForTimeout(500);

  await expect(input).toBeVisible();
  await expect(input).toHaveValue('Half-typed title');
  await expect(input).toBeFocused();
  await input.press('Enter');
  await expect(item.locator('a.conversation-link')).toHaveText('Half-typed title');
});

/** Stores `exchanges` messages ("Turn 0 [sim tokens=1]", ...) and their
 * one-token answers in one new conversation of the page's user; its id. */
async function storeTurns(page: Page, exchanges: number): Promise<string> {
  let id: string | undefined;
  for (let n = 0; n < exchanges; n++) {
    const response = await page.request.post('/api/chat/stream', {
      data: { content: `Turn ${n} [sim tokens=1]`, ...(id ? { conversation_id: id } : {}) },
      headers: { accept: 'text/event-stream' },
    });
    expect(response.status()).toBe(200);
    const body = await response.text();
    id ??= body.match(/"conversation_id":"([0-9a-f-]{36})"/)![1];
  }
  return id!;
}

test('a long conversation opens at its newest messages; scrolling up, then the button, shows earlier ones', async ({ page }) => {
  test.setTimeout(150_000);
  const errors = watchErrors(page);
  await page.goto('/');
  // 115 exchanges: 230 messages. The page opens with the newest 100; the
  // 100 before them load as the user scrolls up to them, the last 30 by
  // the button.
  const id = await storeTurns(page, 115);
  const ui = await openChat(page, `/c/${id}`);
  await expect(ui.turns).toHaveCount(100);
  await expect(ui.turns.first()).toContainText('Turn 65 [sim tokens=1]');
  await expect(page.getByRole('button', { name: 'Show 130 earlier messages' })).toBeAttached();
  const total = await page.locator('.conversation-total').textContent();
  // Opening at the bottom loads nothing more.
  await page.waitForTimeout(500);
  await expect(ui.turns).toHaveCount(100);

  // Scrolling up with the wheel, a page at a time, until the page before
  // comes on its own.
  const transcript = page.locator('section.transcript');
  await transcript.hover();
  await expect
    .poll(
      async () => {
        await page.mouse.wheel(0, -1500);
        return ui.turns.count();
      },
      { timeout: 30_000 },
    )
    .toBe(200);
  await expect(ui.turns.first()).toContainText('Turn 15 [sim tokens=1]');
  // The view did not jump to the top: the older turns are above it, and the
  // focus stayed where it was.
  expect(await transcript.evaluate((el) => el.scrollTop)).toBeGreaterThan(1000);
  expect(await page.evaluate(() => document.activeElement?.matches('section.transcript, body'))).toBe(true);

  // The rest by keyboard. Focus brings the button into view, which may load
  // them already; either way the turn read stays in place.
  const button = page.getByRole('button', { name: 'Show 30 earlier messages' });
  await button.focus();
  const reading = ui.turns.filter({ hasText: 'Turn 15 [sim tokens=1]' });
  const before = (await reading.boundingBox())!.y;
  await page.keyboard.press('Enter');
  await expect(ui.turns).toHaveCount(230);
  await expect(button).toHaveCount(0);
  await expect.poll(async () => Math.abs((await reading.boundingBox())!.y - before)).toBeLessThan(2);
  await expect(ui.turns.first()).toContainText('Turn 0 [sim tokens=1]');
  // The focus was on the button that went away: it is on the transcript.
  await expect.poll(() => page.evaluate(() => document.activeElement?.matches('section.transcript'))).toBe(true);
  // The conversation's total counted the older answers all along.
  await expect(page.locator('.conversation-total')).toHaveText(total!);
  // A new message still follows the newest text.
  await sendMessage(page, 'And one more [sim tokens=3]');
  await expect(ui.turns).toHaveCount(232);
  await expect(ui.answers.last()).toHaveAttribute('data-status', 'complete');
  await expect(ui.answers.last()).toBeInViewport();
  expect(errors).toEqual([]);
});

test('a message sent right after showing earlier messages is followed into view', async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto('/');
  // 55 exchanges: 110 messages, 10 of them behind "Show earlier messages".
  const id = await storeTurns(page, 55);
  const ui = await openChat(page, `/c/${id}`);
  // (Under load the page may load them on its own first; either way they come.)
  await page
    .getByRole('button', { name: 'Show 10 earlier messages' })
    .click({ timeout: 5_000 })
    .catch(() => {});
  await expect(ui.turns).toHaveCount(110);
  // At once: the page is still holding the turn read in place.
  await sendMessage(page, 'Right away [sim tokens=200 delay_ms=5]');
  await expect(ui.answers.last()).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(ui.answers.last()).toBeInViewport();
  await expect(page.locator('.jump-to-latest')).toHaveCount(0);
});
