// Answers are Markdown, formatted while they stream: the simulator's `echo`
// directive streams back exactly the Markdown we send, in pieces of a few
// characters, so the page must cope with every construct split anywhere.

import { test, expect, openChat, sendMessage } from './support';

const CODE = 'fn main() {\n    // say hello\n    let greeting = "hello";\n    println!("{greeting} {}", 42);\n}';

const MARKDOWN = [
  '# Plan for the week',
  '',
  'Some **bold**, some *emphasis*, `inline code` and a [link](https://example.com/docs).',
  '',
  '1. First step',
  '2. Second step',
  '   - a nested point',
  '',
  '| Day | Task | Hours |',
  '|:----|:----:|------:|',
  '| Mon | write | 3 |',
  '| Tue | review | 2 |',
  '',
  '```rust',
  CODE,
  '```',
  '',
  '> A quote to end with.',
  '',
  'Unsafe bits stay inert: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>',
  'and [a javascript link](javascript:window.__pwned=3) is only text.',
].join('\n');

/** An element's markup without comment nodes: Leptos leaves an empty marker
 * comment (`<!---->`) in elements it creates in the browser, which is not
 * content. */
// The markup of the blocks, without comments, and without the groups a
// streamed answer's blocks are put in (`.md-group`, for layout only).
const markupOf = (el: Element) => {
  const copy = el.cloneNode(true) as Element;
  copy.querySelectorAll(':scope > .md-group').forEach((group) => group.replaceWith(...group.childNodes));
  return copy.innerHTML.replace(/<!--[^]*?-->/g, '');
};

test('Markdown streamed in tiny pieces ends identical to the same Markdown rendered at once', async ({ page }) => {
  const ui = await openChat(page);
  await sendMessage(page, `${MARKDOWN}\n[sim echo chunk=3 delay_ms=2]`);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  const body = answer.locator('.text.markdown');
  const streamed = await body.locator('.md-done').evaluate(markupOf);
  await expect(body.locator('.md-tail')).toBeEmpty();

  // What it rendered: a heading, a list, a table, highlighted code, a quote.
  await expect(body.locator('h1')).toHaveText('Plan for the week');
  await expect(body.locator('ol > li')).toHaveCount(2);
  await expect(body.locator('table tbody tr')).toHaveCount(2);
  await expect(body.locator('table th.align-center')).toHaveText('Task');
  await expect(body.locator('pre code.language-rust')).toHaveText(CODE + '\n');
  await expect(body.locator('pre code .tok-kw').first()).toHaveText('fn');
  await expect(body.locator('pre code .tok-str').first()).toHaveText('"hello"');
  await expect(body.locator('blockquote')).toHaveText('A quote to end with.');
  // Links open safely elsewhere; script links and raw HTML are text.
  const link = body.locator('a', { hasText: 'link' }).first();
  await expect(link).toHaveAttribute('href', 'https://example.com/docs');
  await expect(link).toHaveAttribute('rel', /noopener/);
  await expect(body.locator('a[href^="javascript"]')).toHaveCount(0);
  await expect(body.locator('img, script')).toHaveCount(0);
  await expect(body).toContainText('<img src=x onerror="window.__pwned=1">');
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();

  // The server renders the stored answer whole: the same markup, exactly.
  await page.reload();
  await expect(ui.main).toHaveAttribute('data-hydrated', 'true');
  const rendered = await ui.answers.first().locator('.text.markdown .md-done').evaluate(markupOf);
  expect(rendered).toBe(streamed);
  expect(rendered).toContain('<table>');
});

test('an unfinished code block shows as code while it streams', async ({ page }) => {
  const ui = await openChat(page);
  const code = Array.from({ length: 40 }, (_, i) => `print("line ${i}")`).join('\n');
  await sendMessage(page, `Here it comes:\n\n\`\`\`python\n${code}\n\`\`\`\n\nDone. [sim echo chunk=4 delay_ms=15]`);
  const answer = ui.answers.first();
  const tail = answer.locator('.md-tail');
  // Mid-stream: the open fence is already a code block, never raw backticks.
  await expect(tail.locator('pre code.language-python')).toContainText('line 3', { timeout: 10_000 });
  await expect(answer).toHaveAttribute('data-status', 'streaming');
  expect(await answer.locator('.text').textContent()).not.toContain('```');
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  await expect(answer.locator('.md-done pre code')).toHaveText(code + '\n');
  expect(await answer.locator('.text').textContent()).not.toContain('```');
});

test('Copy puts exactly the code on the clipboard', async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const ui = await openChat(page);
  await sendMessage(page, `Code:\n\n\`\`\`rust\n${CODE}\n\`\`\`\n[sim echo]`);
  const answer = ui.answers.first();
  await expect(answer).toHaveAttribute('data-status', 'complete', { timeout: 15_000 });
  const copy = answer.locator('.code-block .copy-code');
  await expect(copy).toHaveCount(1);
  await copy.click();
  await expect(copy).toHaveAttribute('data-copied', 'yes');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(CODE + '\n');
  // The label goes back after a moment.
  await expect(copy).not.toHaveAttribute('data-copied', /./, { timeout: 5_000 });
});
