import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BURST = fileURLToPath(new URL('./fixtures/log-burst.mjs', import.meta.url));

/**
 * Log lines never stop a process: with stdout not read (a full pipe, a stalled log shipper) a process keeps
 * running, and SIGTERM still ends it.
 */
describe('logging to a stdout nobody reads', () => {
  it('keeps the process running and lets SIGTERM end it; the lines that got out are whole JSON', async () => {
    // ~30 MB of log lines: far more than a pipe holds (64 KB) and than the logger buffers (16 MB).
    const child = spawn(process.execPath, [BURST, '120000'], { cwd: path.dirname(BURST), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
    child.stdout.pause();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!/alive\n[\s\S]*alive\n/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // The burst returned and the event loop keeps turning while nobody reads stdout.
      expect(stderr).toMatch(/burst done in \d+ ms/);
      expect(stderr).toMatch(/alive\n[\s\S]*alive\n/);
      const termAt = Date.now();
      child.kill('SIGTERM');
      const chunks: Buffer[] = [];
      const timeout = new Promise<null>((r) => setTimeout(() => r(null), 10_000));
      const end = await Promise.race([exited, timeout]);
      expect(end, 'the process did not exit within 10 s of SIGTERM').not.toBeNull();
      expect(end!.code).toBe(0);
      expect(end!.at - termAt).toBeLessThan(5_000);
      child.stdout.on('data', (d: Buffer) => chunks.push(d));
      child.stdout.resume();
      await new Promise((r) => child.stdout.once('close', r));
      // Lines still waiting at exit are lost, the last one perhaps cut where the pipe was full; every line before it is whole.
      const text = Buffer.concat(chunks).toString();
      const lines = text.slice(0, text.lastIndexOf('\n')).split('\n');
      expect(lines.length).toBeGreaterThan(100);
      for (const line of lines) expect(JSON.parse(line)).toMatchObject({ msg: 'burst line', component: 'burst' });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says how many lines it dropped once stdout is read again, and every other line arrives', async () => {
    const total = 120_000;
    const child = spawn(process.execPath, [BURST, String(total)], { cwd: path.dirname(BURST), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pause();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!stderr.includes('burst done') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(stderr).toMatch(/burst done/);
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stdout.resume();
      while (!text.includes('"dropped"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const lines = text.slice(0, text.lastIndexOf('\n')).split('\n').map((l) => JSON.parse(l) as { msg: string; dropped?: number });
      const report = lines.find((l) => l.dropped !== undefined);
      expect(report?.msg).toMatch(/log lines were dropped: stdout was not read/);
      const received = lines.filter((l) => l.msg === 'burst line').length;
      expect(report!.dropped).toBeGreaterThan(0);
      expect(received + report!.dropped!).toBe(total);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
