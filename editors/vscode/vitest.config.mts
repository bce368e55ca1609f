import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: {
      vscode: fileURLToPath(new URL('./test/mocks/vscode.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // The integration test starts the real server and engine; loading a model takes seconds on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
