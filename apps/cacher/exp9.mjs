import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';
const dir = '/tmp/fdexp7';
const T = () => performance.now();
for (const variant of ['default', 'uncompressed', 'dictionary', 'noview-checkpoint-explicit']) {
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.duckdb') || f.endsWith('.wal')) fs.rmSync(`${dir}/${f}`);
  const db = await DuckDBInstance.create(':memory:');
  const conns = await Promise.all([0, 1, 2, 3].map(() => db.connect()));
  const c = conns[0];
  if (variant === 'uncompressed') await c.run(`SET force_compression='uncompressed'`);
  if (variant === 'dictionary') await c.run(`SET force_compression='dictionary'`);
  await c.run(`ATTACH '${dir}/snap.duckdb' AS snap`);
  await c.run(`CREATE SCHEMA snap.parts`);
  let t = T();
  let next = 0;
  await Promise.all(conns.map(async (cc) => { while (next < 10) { const f = next++; await cc.run(`CREATE TABLE snap.parts.f${f} AS SELECT * FROM read_csv('${dir}/part-${f}.csv', header=true, auto_detect=true)`); } }));
  const tRead = T() - t;
  if (variant === 'noview-checkpoint-explicit') { const t2 = T(); await c.run('CHECKPOINT snap'); console.log('  checkpoint', (T()-t2).toFixed(0)); }
  const t3 = T();
  await c.run('DETACH snap');
  console.log(variant, 'reads', tRead.toFixed(0), 'detach', (T() - t3).toFixed(0), 'total', (T() - t).toFixed(0), (fs.statSync(`${dir}/snap.duckdb`).size/1e6).toFixed(1), 'MB');
  for (const cc of conns) cc.closeSync();
  db.closeSync();
}
