import { defineConfig } from '@playwright/test';

// Browser tests run against Debian's chromium (never a downloaded browser) and
// a debug build of the app (`cargo leptos build`) answering from the built-in
// Bedrock simulator, so they need neither network nor AWS credentials.

const PORT = 3137;
export const BASE_URL = `http://127.0.0.1:${PORT}`;

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
      BEDROCK_CHAT_SERVER_SITE_ADDR: `127.0.0.1:${PORT}`,
      LEPTOS_SITE_ROOT: 'target/site',
      LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_OUTPUT_NAME: 'bedrock-chat',
      LEPTOS_ENV: 'PROD',
    },
  },
});
