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
});
