import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chownSync, existsSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, exportsCurrent, freePort, post, rows, waitFor } from '../helpers.js';

/**
 * docker-compose.yml and the Dockerfile, for real: a private dockerd (its own socket, data root and bridge) with
 * locally built stand-ins for the base images, the image built from a clean clone, then `docker-compose up` and
 * what a user does with it. Skipped, with the reason, where no dockerd can be started.
 */
const HERE = path.join(ROOT, 'test/docker');
const UID = 1234;
const PROJECT = `fdtest${process.pid}`;
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string; environment?: Record<string, string> }> };
const COMPONENTS = ['monitor', 'cacher', 'query-api', 'exporter', 'write-applier'];
/** The port each component serves its metrics and health on inside its container. */
const METRICS_PORT: Record<string, string> = {
  monitor: 'MONITOR_METRICS_PORT',
  cacher: 'CACHER_METRICS_PORT',
  'query-api': 'QUERY_API_PORT',
  exporter: 'EXPORTER_METRICS_PORT',
  'write-applier': 'WRITE_APPLIER_METRICS_PORT',
};

const started = spawnSync('bash', [path.join(HERE, 'dockerd.sh'), 'start'], { encoding: 'utf8' });
const dockerHost = started.status === 0 ? started.stdout.trim() : null;
const dockerEnv = { ...process.env, DOCKER_HOST: dockerHost ?? '', DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
/** docker-compose (v1, Debian's) or the `docker compose` plugin, whichever this machine has. */
const composeCommand = !dockerHost
  ? null
  : spawnSync('docker-compose', ['version'], { env: dockerEnv }).status === 0
    ? ['docker-compose']
    : spawnSync('docker', ['compose', 'version'], { env: dockerEnv }).status === 0
      ? ['docker', 'compose']
      : null;
const skipReason = !dockerHost ? started.stderr.trim() || `dockerd.sh exited ${started.status}` : !composeCommand ? 'neither docker-compose nor the docker compose plugin is installed (Debian: apt-get install docker-compose)' : null;
if (skipReason) console.warn(`docker compose test skipped: ${skipReason}`);

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, env: opts.env ?? dockerEnv, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r;
}
const docker = (...args: string[]) => run('docker', args).stdout.trim();

describe.skipIf(skipReason !== null)('docker compose up (private dockerd, stand-in base images)', () => {
  let clone: string;
  let dataDir: string;
  let httpPort: number;
  let pgPort: number;
  let composeEnv: NodeJS.ProcessEnv;
  let down = false;
  const dc = (...args: string[]) => run(composeCommand![0]!, [...composeCommand!.slice(1), '-p', PROJECT, '-f', path.join(clone, 'docker-compose.yml'), ...args], { cwd: clone, env: composeEnv });
  /** Runs `script` with node inside a service's container. */
  const inside = (service: string, script: string) => dc('exec', '-T', service, 'node', '-e', script).stdout.trim();
  const containers = () => docker('ps', '-a', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.Names}}').split('\n').filter(Boolean);

  beforeAll(async () => {
    const work = await mkdtemp('/var/tmp/flashduck-compose-');
    clone = path.join(work, 'clone');
    dataDir = path.join(work, 'data');
    // The base images the Dockerfile and compose file name, built here (no registry is reachable).
    const nodeImage = run('bash', [path.join(HERE, 'standins.sh'), compose.services.redis!.image!], { timeoutMs: 900_000 }).stdout.trim();
    // The image from a clean clone of what is committed: nothing the working tree holds (node_modules, dist) leaks in.
    run('git', ['clone', '--quiet', '--depth', '1', `file://${ROOT}`, clone]);
    const built = Date.now();
    run('docker', ['build', '--quiet', '--build-arg', `NODE_VERSION=${nodeImage.split(':')[1]!.split('-')[0]!}`, '-t', 'flashduck:local', clone], { timeoutMs: 1_200_000 });
    console.log(`flashduck:local built in ${((Date.now() - built) / 1000).toFixed(0)} s from ${run('git', ['-C', clone, 'rev-parse', '--short', 'HEAD']).stdout.trim()}`);

    await cp(path.join(ROOT, 'examples/data'), dataDir, { recursive: true });
    // The folder belongs to the containers' user, as an operator would set it up.
    run('chown', ['-R', `${UID}:${UID}`, dataDir]);
    httpPort = await freePort();
    pgPort = await freePort();
    composeEnv = {
      ...dockerEnv,
      FLASHDUCK_HOST_DATA_DIR: dataDir,
      FLASHDUCK_HTTP_PORT: String(httpPort),
      FLASHDUCK_PG_PORT: String(pgPort),
      FLASHDUCK_UID: String(UID),
      FLASHDUCK_GID: String(UID),
    };
    dc('up', '--detach', '--no-build');
    await waitFor(
      'every container healthy',
      () => {
        const states = containers().map((c) => docker('inspect', '-f', '{{.State.Health.Status}}', c));
        return states.length === COMPONENTS.length + 1 && states.every((s) => s === 'healthy');
      },
      180_000,
      2_000,
    );
  }, 1_800_000);

  afterAll(async () => {
    if (clone && !down) spawnSync(composeCommand![0]!, [...composeCommand!.slice(1), '-p', PROJECT, '-f', path.join(clone, 'docker-compose.yml'), 'down', '--volumes', '--timeout', '5'], { cwd: clone, env: composeEnv });
    if (clone) await rm(path.dirname(clone), { recursive: true, force: true });
    // Superseded builds of flashduck:local; the stand-ins and the build cache stay for the next run.
    spawnSync('docker', ['image', 'prune', '--force'], { env: dockerEnv });
    spawnSync('bash', [path.join(HERE, 'dockerd.sh'), 'stop']);
  }, 120_000);

  it('brings Redis and all five components up healthy', () => {
    const services = containers().map((c) => docker('inspect', '-f', '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Health.Status}}', c)).sort();
    expect(services).toEqual([...COMPONENTS, 'redis'].sort().map((s) => `${s} healthy`));
  });

  it('answers a query over HTTP and over the PostgreSQL protocol from the host', async () => {
    expect(await rows(httpPort, 'SELECT count(*)::INTEGER AS n FROM orders')).toEqual([{ n: 12 }]);
    const psql = spawnSync('/usr/bin/psql', ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'me', '-d', 'flashduck', '-X', '-A', '-t', '-c', 'SELECT count(*) FROM customers'], { encoding: 'utf8', env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
    expect(psql.stderr).toBe('');
    expect(psql.stdout.trim()).toBe('7');
  });

  it('makes a new file in the bind-mounted folder a table', async () => {
    const file = path.join(dataDir, 'arrivals.csv');
    await writeFile(file, 'id,city\n1,Oslo\n2,Lima\n3,Pune\n');
    chownSync(file, UID, UID);
    await waitFor('arrivals served', async () => (await fetch(`http://127.0.0.1:${httpPort}/v1/tables/arrivals`)).status === 200, 60_000, 500);
    expect(await rows(httpPort, 'SELECT city FROM arrivals ORDER BY id')).toEqual([{ city: 'Oslo' }, { city: 'Lima' }, { city: 'Pune' }]);
  });

  it('applies an upsert in the bind mount, as the configured uid', async () => {
    const w = await post(httpPort, '/v1/tables/orders/upsert', { key: ['order_id'], rows: [{ order_id: 1001, amount: 42.5 }, { order_id: 9001, amount: 1.25 }] });
    expect(w.status).toBe(202);
    await waitFor('the write visible', async () => ((await (await fetch(`http://127.0.0.1:${httpPort}/v1/writes/${w.body.writeId}`)).json()) as { status: string }).status === 'visible', 60_000, 500);
    expect(await rows(httpPort, 'SELECT order_id, amount FROM orders WHERE order_id IN (1001, 9001) ORDER BY 1')).toEqual([
      { order_id: 1001, amount: 42.5 },
      { order_id: 9001, amount: 1.25 },
    ]);
    // The file that held key 1001, rewritten, and the applier's own file for the new key: both the writer's.
    for (const f of ['orders/2024-01.csv', 'orders/flashduck-writes.parquet']) {
      const st = statSync(path.join(dataDir, f));
      expect({ file: f, uid: st.uid, gid: st.gid }).toEqual({ file: f, uid: UID, gid: UID });
    }
    expect(readFileSync(path.join(dataDir, 'orders/2024-01.csv'), 'utf8')).toMatch(/^1001,.*42\.5/m);
  });

  it('exports every table to the exports volume', async () => {
    await waitFor('exports current', () => exportsCurrent(httpPort, 5), 60_000, 500).catch(async (err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(await (await fetch(`http://127.0.0.1:${httpPort}/v1/status`)).json())}`);
    });
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/exports/orders.parquet`);
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect([bytes.subarray(0, 4).toString(), bytes.subarray(-4).toString()]).toEqual(['PAR1', 'PAR1']);
    const listing = inside('exporter', "console.log(require('fs').readdirSync('/exports').filter((f) => f.endsWith('.parquet')).sort().join(','))");
    expect(listing).toBe('arrivals.parquet,customers.parquet,events.parquet,orders.parquet,products.parquet');
  }, 90_000);

  it("serves each component's /metrics", () => {
    for (const service of COMPONENTS) {
      const port = compose.services[service]!.environment![METRICS_PORT[service]!];
      const metrics = inside(service, `fetch('http://127.0.0.1:${port}/metrics').then(async (r) => console.log(r.status, (await r.text()).includes('flashduck_')))`);
      expect(`${service} ${metrics}`).toBe(`${service} 200 true`);
    }
  });

  it('ships a lean image that runs the CLI', () => {
    expect(docker('run', '--rm', 'flashduck:local', 'node', 'apps/cli/dist/main.js', '--help')).toMatch(/^Usage: flashduck <command>/m);
    // No compilers, TypeScript, test tools or sources in the runtime stage.
    const found = docker(
      'run', '--rm', 'flashduck:local', 'sh', '-c',
      'for c in gcc cc g++ make python3 tsc; do command -v $c; done; ls -d node_modules/.pnpm/typescript@* node_modules/.pnpm/vitest@* node_modules/.pnpm/eslint@* node_modules/.pnpm/@types+express@* 2>/dev/null; find /app -path /app/node_modules -prune -o \\( -name "*.test.*" -o -name "*.ts" ! -name "*.d.ts" -o -name test -type d \\) -print',
    );
    expect(found).toBe('');
    const [size, layers] = docker('image', 'inspect', '-f', '{{.Size}} {{len .RootFS.Layers}}', 'flashduck:local').split(' ').map(Number);
    console.log(`flashduck:local: ${(size! / 1e6).toFixed(0)} MB, ${layers} layers`);
  });

  it('stops every component with exit code 0 within its grace period, and down -v leaves nothing behind', () => {
    const names = containers();
    dc('stop');
    const exits = names.map((c) => docker('inspect', '-f', '{{index .Config.Labels "com.docker.compose.service"}} {{.State.ExitCode}} {{.State.OOMKilled}}', c)).sort();
    // A component still running when the grace period ends is killed: exit code 137.
    expect(exits).toEqual([...COMPONENTS, 'redis'].sort().map((s) => `${s} 0 false`));
    dc('down', '--volumes');
    down = true;
    const label = `label=com.docker.compose.project=${PROJECT}`;
    expect({
      containers: docker('ps', '-a', '--filter', label, '--format', '{{.Names}}'),
      volumes: docker('volume', 'ls', '--filter', label, '--format', '{{.Name}}'),
      networks: docker('network', 'ls', '--filter', label, '--format', '{{.Name}}'),
    }).toEqual({ containers: '', volumes: '', networks: '' });
    // The folder stays the source of truth: the bind-mounted data is still there.
    expect(existsSync(path.join(dataDir, 'orders/flashduck-writes.parquet'))).toBe(true);
  });
});
