/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The gateway serves dist/ at / (gateway/src/web.rs): hashed names under
// assets/ are cached for a year, index.html is revalidated. `npm run dev`
// proxies the API to a gateway started by scripts/up.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    manifest: true,
    // Charts and screens are lazy chunks; the first screen stays small.
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { '/api': process.env.PAAS_GATEWAY ?? 'http://127.0.0.1:8080' },
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test-setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    // A loaded CI machine renders Ant Design slowly in jsdom; a hang still fails.
    testTimeout: 30_000,
  },
});
