import { spawnSync } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcess, ROOT, flashduckEnv, freePort, startApps, stopApps, tempDir, uniquePrefix, waitFor } from '../helpers.js';

const PSQL = '/usr/bin/psql';
const JDBC_JAR = '/usr/share/java/postgresql.jar';
const PYTHON = '/usr/bin/python3';

describe('PostgreSQL protocol (separate processes, real clients)', () => {
  const prefix = uniquePrefix('pg');
  let dataDir: string;
  let work: string;
  let httpPort: number;
  let pgPort: number;
  let procs: AppProcess[] = [];
  const psql = (args: string[], input?: string) =>
    spawnSync(PSQL, ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'analyst', '-d', 'flashduck', '-X', '-v', 'ON_ERROR_STOP=0', ...args], { encoding: 'utf8', input, env: { ...process.env, PGCONNECT_TIMEOUT: '5' } });
  const client = async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'analyst', database: 'flashduck' });
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    dataDir = await tempDir('pg-data');
    work = await tempDir('pg-work');
    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    httpPort = await freePort();
    pgPort = await freePort();
    const env = { ...flashduckEnv(prefix, dataDir, work), MONITOR_POLL_MS: '100', MONITOR_SETTLE_MS: '50', QUERY_API_PORT: String(httpPort), QUERY_API_PG_PORT: String(pgPort), QUERY_API_PG_MAX_CONNECTIONS: '6', QUERY_API_PG_IDLE_MS: '2000', QUERY_TIMEOUT_MS: '3000' };
    procs = await startApps(['monitor', 'cacher', 'query-api'], env);
    await waitFor('examples served', async () => ((await (await fetch(`http://127.0.0.1:${httpPort}/v1/tables`)).json()) as { tables: unknown[] }).tables.length === 4, 30_000);
  }, 60_000);
  afterAll(() => stopApps(procs, prefix, dataDir, work));

  it('psql: a query, a refused write with its SQLSTATE, and the session goes on', () => {
    const r = psql(['-A', '-F', ',', '-c', 'SELECT order_id, amount, ordered_at FROM orders ORDER BY order_id LIMIT 2']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('order_id,amount,ordered_at\n1001,39.98,2024-01-03 09:15:00\n1002,149,2024-01-05 14:02:11\n(2 rows)\n');
    const session = psql(['-A', '-t', '-v', 'VERBOSITY=verbose'], 'DELETE FROM orders;\nSELEC 1;\nSELECT * FROM nosuch;\nSELECT count(*) FROM orders;\n');
    expect(session.stderr).toMatch(/ERROR:\s+25006: DELETE statements are not allowed/);
    expect(session.stderr).toMatch(/ERROR:\s+42601: .*syntax error at or near "SELEC"/);
    expect(session.stderr).toMatch(/ERROR:\s+42P01: .*Table with name nosuch does not exist/);
    expect(session.stdout.trim()).toBe('12');
  });

  it('psql: \\dt lists the tables and \\d describes one with PostgreSQL type names', () => {
    const dt = psql(['-c', '\\dt']);
    expect(dt.stderr).toBe('');
    expect(dt.stdout).toMatch(/public \| customers \| table \| flashduck/);
    expect(dt.stdout).toMatch(/\(4 rows\)/);
    const d = psql(['-c', '\\d orders']);
    expect(d.stderr).toBe('');
    expect(d.stdout).toMatch(/Table "public\.orders"/);
    expect(d.stdout).toMatch(/ order_id +\| bigint +\|/);
    expect(d.stdout).toMatch(/ amount +\| double precision +\|/);
    expect(d.stdout).toMatch(/ ordered_at +\| timestamp without time zone +\|/);
    // The tables also answer as public.<table>, as clients that qualify names ask.
    expect(psql(['-A', '-t', '-c', 'SELECT count(*) FROM public.orders']).stdout.trim()).toBe('12');
  });

  it('psql: the other browsing commands answer without an error', () => {
    const run = (command: string) => {
      const r = psql(['-c', command]);
      expect(r.stderr, command).toBe('');
      return r.stdout;
    };
    expect(run('\\d+ customers')).toMatch(/ signup_date +\| date +\|.*\n[\s\S]*Access method: heap/);
    expect(run('\\l')).toMatch(/ flashduck +\| flashduck +\| UTF8/);
    expect(run('\\dn')).toMatch(/ public +\| flashduck\n\(1 row\)/);
    expect(run('\\dt+ ord*')).toMatch(/ public +\| orders +\| table +\| flashduck/);
    expect(run('\\du')).toMatch(/ flashduck /);
    expect(run('\\df')).toMatch(/\(0 rows\)/);
    expect(run('\\dp')).toMatch(/\(4 rows\)/);
    // The forms GUI tools' browsing queries take: regclass literals, PostgreSQL array literals, current_setting, pg_get_keywords.
    const q = (sql: string) => {
      const r = psql(['-A', '-t', '-c', sql]);
      expect(r.stderr, sql).toBe('');
      return r.stdout.trim();
    };
    expect(q(`SELECT n.nspname FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass ORDER BY 1`)).toBe('information_schema\npg_catalog\npublic');
    expect(q(`SELECT 'pg_class'::regclass, c.relname FROM pg_class c WHERE c.oid = 'public.orders'::regclass`)).toBe('1259|orders');
    expect(q(`SELECT typname FROM pg_type WHERE typname = ANY('{int8,numeric}'::text[]) ORDER BY oid`)).toBe('int8\nnumeric');
    expect(q(`SELECT current_setting('search_path'), session_user`)).toBe('"$user", public|flashduck');
    expect(q(`SELECT count(*) > 100 FROM pg_catalog.pg_get_keywords()`)).toBe('t');
  });

  it('information_schema answers as PostgreSQL does: public tables and their columns with SQL type names', () => {
    const tables = psql(['-A', '-t', '-F', ',', '-c', "SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name"]);
    expect(tables.stderr).toBe('');
    expect(tables.stdout.trim().split('\n')).toEqual(['public,customers,BASE TABLE', 'public,events,BASE TABLE', 'public,orders,BASE TABLE', 'public,products,BASE TABLE']);
    const columns = psql(['-A', '-t', '-F', ',', '-c', "SELECT column_name, data_type, udt_name, numeric_precision, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position"]);
    expect(columns.stderr).toBe('');
    expect(columns.stdout).toMatch(/^order_id,bigint,int8,64,YES$/m);
    expect(columns.stdout).toMatch(/^amount,double precision,float8,53,YES$/m);
    expect(columns.stdout).toMatch(/^ordered_at,timestamp without time zone,timestamp,,YES$/m);
    const schemata = psql(['-A', '-t', '-c', 'SELECT schema_name FROM information_schema.schemata ORDER BY 1']);
    expect(schemata.stdout.trim().split('\n')).toEqual(['information_schema', 'pg_catalog', 'public']);
    // No keys or constraints: a tool looking for them finds none instead of an error.
    expect(psql(['-A', '-t', '-c', 'SELECT count(*) FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k USING (constraint_name)']).stdout.trim()).toBe('0');
  });

  it('JDBC (pgjdbc): DatabaseMetaData as schema browsers call it (tables, columns, schemas, keys, indexes), a prepared statement past its server-side threshold, a refused write', () => {
    const r = spawnSync('java', ['-cp', JDBC_JAR, path.join(ROOT, 'test/e2e/pg/JdbcProbe.java'), String(pgPort)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('product PostgreSQL 16.0 (FlashDuck)');
    expect(lines.filter((l) => l.startsWith('table '))).toEqual(['table public.customers TABLE', 'table public.events TABLE', 'table public.orders TABLE', 'table public.products TABLE']);
    expect(lines.filter((l) => l.startsWith('column ')).slice(0, 6)).toEqual(['column 1 order_id int8 -5', 'column 2 customer_id int8 -5', 'column 3 sku text 12', 'column 4 quantity int8 -5', 'column 5 amount float8 8', 'column 6 ordered_at timestamp 93']);
    expect(lines.filter((l) => l.startsWith('schema '))).toEqual(['schema information_schema', 'schema pg_catalog', 'schema public']);
    expect(lines.find((l) => l.startsWith('types '))).toMatch(/ TABLE /);
    // Keys, indexes and foreign keys: none, asked without an error.
    expect(lines).toContain('keys 0');
    expect(lines.filter((l) => l.startsWith('execution '))).toEqual(Array.from({ length: 7 }, (_, i) => `execution ${i + 1} 1002 149.0 2024-01-05 14:02:11.0`));
    expect(lines[lines.length - 1]).toBe('refused 25006');
  });

  it('postgres.js: its type lookup on connect, then a parameterized query', async () => {
    const sql = postgres({ host: '127.0.0.1', port: pgPort, user: 'analyst', database: 'flashduck' });
    try {
      const rows = await sql`SELECT order_id, amount, ordered_at FROM orders WHERE order_id = ${1002}`;
      expect(rows.map((r) => ({ ...r }))).toEqual([{ order_id: '1002', amount: 149, ordered_at: new Date('2024-01-05T14:02:11Z') }]);
    } finally {
      await sql.end();
    }
  });

  it('node-postgres: parameters, named prepared statements and types', async () => {
    const c = await client();
    try {
      const r = await c.query('SELECT order_id, amount, ordered_at FROM orders WHERE order_id = $1 OR order_id = $2 ORDER BY order_id', [1005, 1002]);
      expect(r.rows.map((x) => x.order_id)).toEqual(['1002', '1005']);
      expect(r.fields.map((f) => [f.name, f.dataTypeID])).toEqual([
        ['order_id', 20],
        ['amount', 701],
        ['ordered_at', 1114],
      ]);
      for (const id of [1001, 1003]) {
        const named = await c.query({ name: 'one-order', text: 'SELECT customer_id FROM orders WHERE order_id = $1', values: [id] });
        expect(named.rows).toHaveLength(1);
      }
      // Every common type, parsed by the driver from PostgreSQL's text forms.
      const t = await c.query(
        `SELECT true AS b, 1::TINYINT AS i2, 2::INTEGER AS i4, 3::HUGEINT AS h, 1.5::FLOAT AS f4, 'NaN'::DOUBLE AS nan, 12.34::DECIMAL(10,2) AS d, DATE '2024-01-02' AS dt,
           TIMESTAMPTZ '2024-01-02 03:04:05.123456+00' AS tz, INTERVAL 3 DAY + INTERVAL 4 HOUR AS iv, '5b0c3b2e-1f44-4d4e-9e3b-6b0f6e9c1c11'::UUID AS u,
           [1, 2] AS l, {'a': 1, 'b': 'x'} AS s, 'ab'::BLOB AS bl, NULL::VARCHAR AS n`,
      );
      expect(t.fields.map((f) => f.dataTypeID)).toEqual([16, 21, 23, 1700, 700, 701, 1700, 1082, 1184, 1186, 2950, 114, 114, 17, 25]);
      const row = t.rows[0] as Record<string, unknown>;
      expect({ ...row, dt: (row.dt as Date).toISOString(), tz: (row.tz as Date).toISOString(), iv: { ...(row.iv as object) } }).toEqual({
        b: true, i2: 1, i4: 2, h: '3', f4: 1.5, nan: Number.NaN, d: '12.34', dt: '2024-01-02T00:00:00.000Z', tz: '2024-01-02T03:04:05.123Z',
        iv: { days: 3, hours: 4 }, u: '5b0c3b2e-1f44-4d4e-9e3b-6b0f6e9c1c11', l: [1, 2], s: { a: 1, b: 'x' }, bl: Buffer.from('ab'), n: null,
      });
      await expect(c.query('SELECT * FROM orders WHERE order_id = $1', ['not a number'])).rejects.toMatchObject({ code: '22P02' });
      // The connection keeps working after an error.
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      // Unnamed expressions are named as PostgreSQL names them.
      const named = await c.query('SELECT count(*), sum(quantity), quantity::INTEGER, 1 + 1, version(), current_database() FROM orders GROUP BY quantity ORDER BY quantity LIMIT 1');
      expect(named.fields.map((f) => f.name)).toEqual(['count', 'sum', 'quantity', '?column?', 'version', 'current_database']);
    } finally {
      await c.end();
    }
  });

  it('psycopg2: parameters, and values come back as date, float and Decimal', () => {
    const script = [
      'import psycopg2, sys',
      `conn = psycopg2.connect(host="127.0.0.1", port=${pgPort}, user="analyst", dbname="flashduck")`,
      'cur = conn.cursor()',
      'cur.execute("SELECT signup_date, 1.5::DOUBLE AS f, 12.34::DECIMAL(10,2) AS d, name FROM customers WHERE id = %s", (2,))',
      'row = cur.fetchone()',
      'print(type(row[0]).__name__, type(row[1]).__name__, type(row[2]).__name__, row[2], row[3])',
      'conn.rollback()',
      'try:',
      '    cur.execute("INSERT INTO customers VALUES (9)")',
      'except psycopg2.Error as e:',
      '    print(e.pgcode)',
      'conn.rollback()',
      'cur.execute("SELECT count(*) FROM customers")',
      'print(cur.fetchone()[0])',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['date float Decimal 12.34 Grace Hopper', '25006', '7', '']);
  });

  it('SQLAlchemy reflects the tables and pandas reads them with their types', () => {
    const script = [
      'import pandas as pd',
      'from sqlalchemy import MetaData, Table, create_engine, func, inspect, select, text',
      `engine = create_engine("postgresql+psycopg2://analyst@127.0.0.1:${pgPort}/flashduck")`,
      'insp = inspect(engine)',
      'print(",".join(insp.get_table_names()))',
      'print(",".join(f"{c[\'name\']}:{c[\'type\']}" for c in insp.get_columns("orders")))',
      'print(insp.get_pk_constraint("orders")["constrained_columns"], insp.get_indexes("orders"), insp.get_foreign_keys("orders"))',
      'orders = Table("orders", MetaData(), autoload_with=engine)',
      'with engine.connect() as c:',
      '    print(c.execute(select(orders.c.currency, func.count()).where(orders.c.currency.isnot(None)).group_by(orders.c.currency).order_by(orders.c.currency)).all())',
      'df = pd.read_sql_table("orders", engine)',
      'print(len(df), df.dtypes["order_id"], df.dtypes["amount"], df.dtypes["ordered_at"])',
      'print(pd.read_sql(text("SELECT count(*) AS n FROM orders WHERE amount > :a"), engine, params={"a": 100}).n[0])',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      'customers,events,orders,products',
      'order_id:BIGINT,customer_id:BIGINT,sku:TEXT,quantity:BIGINT,amount:DOUBLE_PRECISION,ordered_at:TIMESTAMP,currency:TEXT,coupon:TEXT',
      '[] [] []',
      "[('EUR', 3), ('GBP', 1), ('USD', 3)]",
      '12 int64 float64 datetime64[ns]',
      '5',
      '',
    ]);
  });

  it('CancelRequest interrupts a running statement (57014); the deadline does too', async () => {
    const c = await client();
    try {
      const running = c.query('SELECT count(*) FROM range(100000000000) a');
      let settled = false;
      running.then(
        () => (settled = true),
        () => (settled = true),
      );
      await new Promise((r) => setTimeout(r, 300));
      // A CancelRequest, as every driver sends it: a connection of its own with the process id and secret key
      // the server gave this session.
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const cancel = Buffer.alloc(16);
      cancel.writeInt32BE(16, 0);
      cancel.writeInt32BE(80877102, 4);
      cancel.writeInt32BE(processID, 8);
      cancel.writeInt32BE(secretKey, 12);
      const wrongKey = Buffer.from(cancel);
      wrongKey.writeInt32BE(secretKey ^ 1, 12);
      for (const request of [wrongKey, cancel]) {
        const s = net.connect(pgPort, '127.0.0.1', () => s.end(request));
        await new Promise((r) => s.once('close', r));
        if (request === wrongKey) {
          await new Promise((r) => setTimeout(r, 200));
          expect(settled, 'a CancelRequest with a wrong key cancels nothing').toBe(false);
        }
      }
      await expect(running).rejects.toMatchObject({ code: '57014', message: expect.stringMatching(/canceling statement due to user request/) });
      await expect(c.query('SELECT count(*) FROM range(100000000000) a')).rejects.toMatchObject({ code: '57014', message: expect.stringMatching(/deadline of 3000 ms/) });
      expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
  });

  it('refuses connections past QUERY_API_PG_MAX_CONNECTIONS (53300) and serves again once one closes', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => client()));
    try {
      await expect(client()).rejects.toMatchObject({ code: '53300' });
    } finally {
      await clients.pop()!.end();
    }
    await waitFor('a free slot', async () => {
      const c = await client().catch(() => null);
      await c?.end();
      return c !== null;
    });
    await Promise.all(clients.map((c) => c.end()));
  });

  it('answers a repeated statement from the result cache HTTP uses, and never a stale one after a table changes', async () => {
    const hits = async () => Number(/flashduck_query_cache_lookups_total\{result="hit"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text())?.[1] ?? 0);
    const c = await client();
    try {
      const count = async () => (await c.query('SELECT count(*) AS n, max(order_id) AS top FROM orders WHERE order_id > $1', [0])).rows[0];
      const first = await count();
      const before = await hits();
      expect(await count()).toEqual(first);
      expect(await hits()).toBe(before + 1);
      await writeFile(path.join(dataDir, 'orders', '2024-04.csv'), 'order_id,customer_id,sku,quantity,amount,ordered_at,currency\n2001,1,P-1,1,5.5,2024-04-01 10:00:00,EUR\n');
      await waitFor('the new file served over the PostgreSQL protocol', async () => (await count()).top === '2001');
      expect(Number((await count()).n)).toBe(Number(first.n) + 1);
    } finally {
      await c.end();
    }
  });

  it('a client that sends nothing holds up no one, and idle connections are closed (57P05)', async () => {
    const silent = net.connect(pgPort, '127.0.0.1');
    await new Promise((r) => silent.once('connect', r));
    const closed = new Promise((r) => silent.once('close', r));
    const c = await client();
    const errors: { code?: string }[] = [];
    c.on('error', (err) => errors.push(err as { code?: string }));
    expect((await c.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    // QUERY_API_PG_IDLE_MS=2000: both are closed after two idle seconds.
    await closed;
    await waitFor('the idle client told why', () => errors.find((e) => e.code === '57P05'), 5_000);
    await expect(c.query('SELECT 4')).rejects.toThrow();
  });
});

describe('PostgreSQL protocol with API tokens and TLS (separate processes)', () => {
  const prefix = uniquePrefix('pgauth');
  let dataDir: string;
  let work: string;
  let pgPort: number;
  let procs: AppProcess[] = [];
  const psql = (password: string, sslmode: string) =>
    spawnSync(PSQL, ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'anyone', '-d', 'flashduck', '-X', '-A', '-t', '-c', 'SELECT count(*) FROM orders'], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: password, PGSSLMODE: sslmode, PGCONNECT_TIMEOUT: '5' },
    });

  beforeAll(async () => {
    dataDir = await tempDir('pgauth-data');
    work = await tempDir('pgauth-work');
    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    // A self-signed certificate, as an operator would configure one.
    const cert = path.join(work, 'server.crt');
    const key = path.join(work, 'server.key');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const httpPort = await freePort();
    pgPort = await freePort();
    const env = {
      ...flashduckEnv(prefix, dataDir, work),
      MONITOR_POLL_MS: '100',
      QUERY_API_PORT: String(httpPort),
      QUERY_API_PG_PORT: String(pgPort),
      QUERY_API_PG_TLS_CERT_FILE: cert,
      QUERY_API_PG_TLS_KEY_FILE: key,
      FLASHDUCK_API_TOKENS: 'reader-token-1:read,writer-token-2:write',
    };
    procs = await startApps(['monitor', 'cacher', 'query-api'], env);
    await waitFor('orders served', async () => (await fetch(`http://127.0.0.1:${httpPort}/v1/tables/orders`, { headers: { authorization: 'Bearer reader-token-1' } })).status === 200, 30_000);
  }, 60_000);
  afterAll(() => stopApps(procs, prefix, dataDir, work));

  it('asks for a token with the read scope as the password (SCRAM-SHA-256 over TLS)', () => {
    const ok = psql('reader-token-1', 'require');
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe('12');
    const writeOnly = psql('writer-token-2', 'require');
    expect(writeOnly.status).not.toBe(0);
    expect(writeOnly.stderr).toMatch(/password authentication failed for user "anyone"/);
    expect(psql('wrong-password', 'require').stderr).toMatch(/password authentication failed/);
  });

  it('refuses a wrong password with SQLSTATE 28P01, as PostgreSQL does', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'anyone', password: 'wrong-password', database: 'flashduck', ssl: { rejectUnauthorized: false } });
    const refused = await c.connect().then(() => null, (err: { code?: string; message: string }) => err);
    expect(refused?.code).toBe('28P01');
    expect(refused?.message).toBe('password authentication failed for user "anyone"');
    const ok = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'anyone', password: 'reader-token-1', database: 'flashduck', ssl: { rejectUnauthorized: false } });
    await ok.connect();
    expect((await ok.query('SELECT count(*)::INTEGER AS n FROM orders')).rows).toEqual([{ n: 12 }]);
    await ok.end();
  });

  it('requires TLS once a certificate is configured', () => {
    const plain = psql('reader-token-1', 'disable');
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toMatch(/SSL connection is required/);
  });
});

describe('PostgreSQL protocol on its default port', () => {
  it('HTTP still serves when the default port 5433 is taken, with a warning naming QUERY_API_PG_PORT', async () => {
    const prefix = uniquePrefix('pgdefault');
    const work = await tempDir('pgdefault');
    // Hold 5433 (or find it held already: taken either way).
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.once('error', () => resolve()).listen(5433, '0.0.0.0', () => resolve()));
    const httpPort = await freePort();
    const env: Record<string, string> = { ...flashduckEnv(prefix, work, work), QUERY_API_PORT: String(httpPort) };
    delete env.QUERY_API_PG_PORT;
    const api = AppProcess.start('query-api', env);
    try {
      await api.waitForLog(/"msg":"query-api listening"/);
      expect(api.logs.join('\n')).toMatch(/the PostgreSQL protocol is off: set QUERY_API_PG_PORT to a free port/);
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    } finally {
      await stopApps([api], prefix, work);
      holder.close();
    }
  });
});
