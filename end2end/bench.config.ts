import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// Benchmarks only: `npx playwright test --config bench.config.ts`.
// Same browser and server as the tests; the test config never sees bench/.
export default defineConfig({
  ...base,
  testDir: './bench',
  testMatch: '**/*.bench.ts',
  timeout: 180_000,
  globalTimeout: 5 * 60_000,
  use: { ...base.use, trace: 'off' },
  // The Markdown bench stores a 200-message conversation for one owner in
  // seconds: past the per-owner message rate a user gets.
  webServer: {
    ...(base.webServer as object),
    env: {
      ...((base.webServer as { env: Record<string, string> }).env),
      BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER: '0',
    },
  } as typeof base.webServer,
});
