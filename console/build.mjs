// Builds the console into dist/ (committed; the Rust binary embeds it):
//   cd console && npm ci && npm run build
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  legalComments: 'eof',
  outdir: 'dist',
  logLevel: 'info',
});
await build({ entryPoints: { app: 'src/style.css' }, bundle: true, minify: true, outdir: 'dist', logLevel: 'info' });
copyFileSync('src/index.html', 'dist/index.html');
copyFileSync('src/favicon.svg', 'dist/favicon.svg');
