import { defineConfig } from '@playwright/test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Browser tests run against Debian's chromium (never a downloaded browser) and
// a debug build of the app (`cargo leptos build`) answering from the built-in
// Bedrock simulator, so they need neither network nor AWS credentials.

const PORT = 3137;
export const BASE_URL = `http://127.0.0.1:${PORT}`;

// Every run starts from an empty store: a new data directory (SQLite file and
// cookie secret), removed when the run ends. Only the runner process starts
// the server; its workers load this file too and must not make directories.
const isWorker = process.env.TEST_WORKER_INDEX !== undefined;
const DATA_DIR = isWorker ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'bedrock-chat-e2e-'));
if (!isWorker) {
  process.on('exit', () => fs.rmSync(DATA_DIR, { recursive: true, force: true }));
}

export default defineConfig({
  testDir: './tests',
  testMatch: '**/*.spec.ts',
  // A 2-core machine also runs the server: one browser at a time.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 60_000,
  globalTimeout: 10 * 60_000,
  expect: { timeout: 10_000 },
  reporter: 'list',
  use: {
    baseURL: BASE_URL,
    browserName: 'chromium',
    headless: true,
    actionTimeout: 10_000,
    navigationTimeout: 20_000,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: {
    // ./dev bench points this at the release build.
    command: process.env.BEDROCK_CHAT_E2E_BINARY ?? './target/debug/bedrock-chat',
    cwd: '..',
    url: BASE_URL,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      BEDROCK_CHAT_BEDROCK_BACKEND: 'simulator',
      BEDROCK_CHAT_STORAGE_DATA_DIR: DATA_DIR,
      // Nothing from the caller's environment may point the tests at a real
      // database or change who the owner of a request is.
      BEDROCK_CHAT_STORAGE_DATABASE_URL: '',
      BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER: '',
      BEDROCK_CHAT_IDENTITY_COOKIE_SECRET: '',
      BEDROCK_CHAT_SERVER_SITE_ADDR: `127.0.0.1:${PORT}`,
      // The suite sends hundreds of messages from one address within
      // minutes, and one conversation of 130 messages (conversations.spec.ts);
      // the cap on answers being written at once keeps its default
      // (defences.spec.ts checks it).
      BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_ADDRESS: '100000',
      BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER: '100000',
      BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR: '100000',
      // tools.spec.ts: one tool that waits for Approve / Deny.
      BEDROCK_CHAT_TOOLS_REQUIRES_APPROVAL: 'search_conversations',
      LEPTOS_SITE_ROOT: 'target/site',
      LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_OUTPUT_NAME: 'bedrock-chat',
      LEPTOS_ENV: 'PROD',
    },
  },
});
