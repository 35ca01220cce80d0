import type { TableMeta } from '@flashduck/core';

/** The public shape of a table in `GET /v1/tables`. */
export function tableSummary(meta: TableMeta) {
  return {
    name: meta.table,
    version: meta.version,
    rows: meta.rows,
    columns: meta.columns.map((c) => ({ name: c.name, type: c.type })),
    files: meta.files.map((f) => ({
      path: f.path,
      size: f.size,
      rows: f.rows,
      format: f.format,
      modifiedAt: new Date(f.mtimeMs).toISOString(),
      ...(f.stale ? { stale: true } : {}),
      ...(f.skipped ? { skipped: f.skipped } : {}),
    })),
    errors: meta.errors,
    updatedAt: new Date(meta.updatedAt).toISOString(),
  };
}

/** `GET /v1/tables/<t>`: the summary plus snapshot details, column provenance and type conflicts. */
export function tableDetail(meta: TableMeta) {
  return {
    ...tableSummary(meta),
    columns: meta.columns.map((c) => ({ name: c.name, type: c.type, files: c.files ?? [] })),
    snapshot: {
      format: meta.parts[0]?.format ?? null,
      bytes: meta.bytes,
      parts: meta.parts.map((p) => ({ id: p.id, rows: p.rows, bytes: p.bytes, chunks: p.chunks, members: p.members, ...(p.exclude?.length ? { excluded: p.exclude.length } : {}) })),
      cause: meta.cause ?? 'build',
      buildMs: meta.buildMs,
      sourceGeneration: meta.sourceGen,
      engine: meta.engine,
    },
    conflicts: meta.conflicts,
  };
}
