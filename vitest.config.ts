import { defineConfig } from 'vitest/config';

// Tests are TypeScript run directly by vitest; the compiled copy under dist/ is for the CLI
// and child processes only, so it must never be collected twice.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
