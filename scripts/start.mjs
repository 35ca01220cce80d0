// `npm start`: install, build, and run FlashDuck standalone on the bundled example data.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT, bootstrap } from './bootstrap.mjs';

bootstrap();
const args = [path.join(ROOT, 'apps/cli/dist/main.js'), 'standalone', ...process.argv.slice(2)];
const env = { ...process.env };
env.FLASHDUCK_DATA_DIR ??= path.join(ROOT, 'examples/data');
env.FLASHDUCK_EXPORT_DIR ??= path.join(ROOT, 'exports');
const child = spawn(process.execPath, args, { stdio: 'inherit', env });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
