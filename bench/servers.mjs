// Baseline servers for the performance benchmark, each run as its own process:
//   node bench/servers.mjs bare <port> <bodyFile> <contentType>     node:http answering fixed bytes from memory
//   node bench/servers.mjs express-duckdb <port> <csvDir>            express + an in-memory DuckDB, running each query
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [kind, portArg, arg, contentType] = process.argv.slice(2);
const port = Number(portArg);

if (kind === 'bare') {
  const body = readFileSync(arg);
  http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': body.length });
    res.end(body);
  }).listen(port, '127.0.0.1', () => process.send?.('ready'));
} else if (kind === 'express-duckdb') {
  const { default: express } = await import('express');
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`CREATE TABLE bench AS SELECT * FROM read_csv('${arg}/*.csv', union_by_name=true)`);
  const app = express();
  app.get('/v1/query', async (req, res) => {
    try {
      const r = await conn.runAndReadAll(String(req.query.sql));
      res.json({ rows: r.getRowObjectsJson() });
    } catch (err) {
      res.status(400).json({ error: String(err) });
    }
  });
  app.listen(port, '127.0.0.1', () => process.send?.('ready'));
}
