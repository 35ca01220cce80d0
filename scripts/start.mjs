// `npm start`: install, build, and run FlashDuck standalone on a copy of the bundled example data.
import { spawn } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, bootstrap } from './bootstrap.mjs';

bootstrap();
const args = [path.join(ROOT, 'apps/cli/dist/main.js'), 'standalone', ...process.argv.slice(2)];
const env = { ...process.env };
// Writes from the console or the CLI change the data folder: run on a copy (kept between runs, never tracked),
// so examples/data stays as the repository has it.
const state = process.env.FLASHDUCK_STATE_DIR ?? path.join(ROOT, '.flashduck');
if (!env.FLASHDUCK_DATA_DIR) {
  const data = path.join(state, 'data');
  if (!existsSync(data)) {
    cpSync(path.join(ROOT, 'examples/data'), data, { recursive: true });
    console.error(`Copied examples/data to ${path.relative(ROOT, data) || data}: FlashDuck serves that copy (delete it to start again from the examples).`);
  }
  env.FLASHDUCK_DATA_DIR = data;
}
env.FLASHDUCK_EXPORT_DIR ??= path.join(state, 'exports');
const child = spawn(process.execPath, args, { stdio: 'inherit', env });
// Ctrl+C in a terminal reaches the child too (same process group); the child takes a repeat within a second
// as the same request, so forwarding it as well never turns a graceful stop into a forced one.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
