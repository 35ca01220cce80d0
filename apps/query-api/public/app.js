// FlashDuck web console: plain modules, no framework, nothing from a CDN.
const $ = (id) => document.getElementById(id);

// ---------- API ----------
let token = localStorage.getItem('flashduck.token') || '';

/** Calls the API; on 401 asks for a token once and retries; errors carry the API's message. */
async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    init = { ...init, method: init.method || 'POST', body: JSON.stringify(init.json) };
  }
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) {
    const t = prompt('This FlashDuck asks for an API token:');
    if (t) {
      token = t.trim();
      localStorage.setItem('flashduck.token', token);
      return api(path, init);
    }
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body.error) message = body.error.message;
    } catch {}
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return res;
}
const withToken = (url) => (token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url);

// ---------- helpers ----------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const fmtBytes = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);
const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString() : n);
function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - (typeof iso === 'number' ? iso : Date.parse(iso))) / 1000));
  return s < 90 ? `${s}s ago` : s < 5400 ? `${Math.round(s / 60)}m ago` : s < 172800 ? `${Math.round(s / 3600)}h ago` : `${Math.round(s / 86400)}d ago`;
}
const cellText = (v) => (v === null || v === undefined ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** A table element from headers and rows of cells (a cell is a value or a Node). */
function grid(headers, rows, { empty = 'nothing yet' } = {}) {
  if (!rows.length) return el('p', { class: 'muted', style: 'padding: 8px' }, empty);
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => (h instanceof Node ? el('th', {}, h) : el('th', {}, h))))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', { class: c === null ? 'null' : typeof c === 'number' ? 'num' : undefined, title: c instanceof Node ? undefined : cellText(c) }, c instanceof Node ? c : cellText(c))))))));
}
function show(id, node) {
  $(id).replaceChildren(node);
}
function banner(message) {
  const b = $('banner');
  b.hidden = !message;
  b.textContent = message || '';
}

// ---------- shared state: status (refreshed live) ----------
let status = { components: [], tables: [], writes: [], exports: [] };
const listeners = [];
async function refreshStatus() {
  try {
    status = await (await api('/v1/status')).json();
    banner(status.redis && !status.redis.reachable ? `Redis is unreachable (${status.redis.error}): serving the table versions this replica holds; components, writes and exports are unknown until it answers.` : '');
  } catch (err) {
    banner(`Cannot load the status: ${err.message}`);
  }
  for (const l of listeners) l();
}
const onStatus = (fn) => listeners.push(fn);

// ---------- Status view ----------
function componentDetail(c) {
  const i = c.info || {};
  switch (c.component) {
    case 'monitor': return [i.role || '-', `${fmtNum(i.files ?? 0)} files, ${i.unsettled ?? 0} settling`];
    case 'cacher': return ['worker', `queue ${i.queue?.wait ?? 0} waiting, ${i.queue?.delayed ?? 0} delayed; building ${i.building ?? 0}`];
    case 'query-api': return ['replica', `port ${i.port ?? '?'}${i.pgPort ? `, PostgreSQL ${i.pgPort}` : ''}, generation ${i.generation ?? '-'}, ${i.queued ?? 0} queued`];
    case 'exporter': return ['worker', `queue ${i.queue?.wait ?? 0} waiting, ${i.queue?.delayed ?? 0} delayed`];
    case 'write-applier': return ['worker', i.lastBatch?.table ? `last batch: ${i.lastBatch.writes} writes to ${i.lastBatch.table}` : 'idle'];
    default: return ['-', ''];
  }
}
function renderStatus() {
  const counts = {};
  for (const c of status.components) counts[c.component] = (counts[c.component] || 0) + 1;
  $('components-summary').textContent = Object.entries(counts).map(([k, n]) => `${n} × ${k}`).join(' · ');
  show('components', grid(['component', 'instance', 'role', 'up since', 'last loop', 'lag / detail'],
    status.components.map((c) => {
      const [role, detail] = componentDetail(c);
      const self = c.component === 'query-api' && c.instance === status.servedBy;
      const instance = el('td', { 'data-instance': c.instance }, c.instance, self ? el('span', { class: 'badge', title: 'the replica serving this page', style: 'margin-left:6px' }, 'this console') : '');
      return [c.component, instance, role, ago(c.startedAt), ago(c.lastLoopAt), detail];
    }), { empty: 'No component is alive (no heartbeat within its TTL).' }));
  show('status-tables', grid(['table', 'version', 'rows', 'files', 'snapshot', 'age', 'last error'],
    status.tables.map((t) => [
      el('td', { 'data-table': t.name }, t.name),
      el('td', { class: 'num', 'data-version': t.name }, String(t.version)),
      el('td', { class: 'num', 'data-rows': t.name }, fmtNum(t.rows)),
      t.files.length,
      fmtBytes(t.snapshot.bytes),
      ago(t.updatedAt),
      t.errors.length ? el('span', { class: 'badge bad', title: t.errors.map((e) => `${e.file}: ${e.message}`).join('\n') }, `${t.errors[t.errors.length - 1].file}: ${t.errors[t.errors.length - 1].message}`) : '',
    ]), { empty: 'No tables yet: add CSV, TSV, JSON, NDJSON or Parquet files to the data folder.' }));
}
onStatus(renderStatus);

// ---------- Explorer ----------
let explorerTable = null;
let previewPage = 0;
const PAGE = 50;
function renderExplorerList() {
  $('explorer-tables').replaceChildren(...status.tables.map((t) => el('li', { class: t.name === explorerTable ? 'active' : undefined, onclick: () => openTable(t.name) }, `${t.name} (${fmtNum(t.rows)})`)));
}
onStatus(renderExplorerList);
/** The explorer's heading: the table's served version, rows and files (kept current as versions arrive). */
function renderExplorerTitle() {
  if (!explorerTable) return undefined;
  const t = status.tables.find((x) => x.name === explorerTable);
  $('explorer-title').textContent = t ? `${explorerTable} — v${t.version}, ${fmtNum(t.rows)} rows, ${t.files.length} files` : explorerTable;
  return t;
}
onStatus(renderExplorerTitle);
async function openTable(name) {
  explorerTable = name;
  previewPage = 0;
  renderExplorerList();
  const t = renderExplorerTitle();
  if (t) show('explorer-schema', grid(['column', 'type', 'from files'], t.columns.map((c) => [c.name, c.type, c.files.join(', ')])));
  show('explorer-diff', el('p', { class: 'muted', style: 'padding: 8px' }, 'Pick two versions and show what changed.'));
  $('diff-status').textContent = '';
  $('diff-from').value = '';
  await Promise.all([loadPreview(), loadVersions()]);
}
async function loadPreview() {
  if (!explorerTable) return;
  try {
    const body = await (await api('/v1/query', { json: { sql: `SELECT * FROM "${explorerTable.replace(/"/g, '""')}" LIMIT ${PAGE} OFFSET ${previewPage * PAGE}` } })).json();
    show('explorer-preview', resultGrid(body));
    $('preview-status').textContent = `rows ${previewPage * PAGE + 1}–${previewPage * PAGE + body.rowCount}`;
    $('preview-next').disabled = body.rowCount < PAGE;
    $('preview-prev').disabled = previewPage === 0;
  } catch (err) {
    show('explorer-preview', el('div', { class: 'error' }, err.message));
  }
}

/** Retained versions of the explorer's table, with a button to query one and the diff pickers filled. */
async function loadVersions() {
  if (!explorerTable) return;
  try {
    const { versions } = await (await api(`/v1/tables/${encodeURIComponent(explorerTable)}/versions`)).json();
    show('explorer-versions', grid(['version', 'created', 'age', 'rows', 'files', 'parts', 'made by', ''],
      versions.map((v) => [
        el('td', { class: 'num', 'data-version-row': v.version }, String(v.version)),
        v.createdAt, ago(v.createdAt), v.rows, v.files, v.parts, v.cause,
        el('button', { onclick: () => queryVersion(explorerTable, v.version) }, 'Query this version'),
      ]), { empty: 'No retained versions (Redis holds none for this table).' }));
    const pick = (id, fallback) => {
      const keep = $(id).value;
      $(id).replaceChildren(...versions.map((v) => el('option', { value: v.version, selected: String(v.version) === keep }, `v${v.version} · ${fmtNum(v.rows)} rows · ${ago(v.createdAt)}`)));
      if (!keep || !versions.some((v) => String(v.version) === keep)) $(id).value = fallback ? String(fallback.version) : '';
    };
    pick('diff-from', versions[1] ?? versions[0]);
    pick('diff-to', versions[0]);
  } catch (err) {
    show('explorer-versions', el('div', { class: 'error' }, err.message));
  }
}
function queryVersion(table, version) {
  $('sql').value = `SELECT * FROM "${table.replace(/"/g, '""')}" LIMIT 100`;
  $('as-of').value = '';
  $('pin-versions').value = `${table}=${version}`;
  renderPins();
  location.hash = '#sql';
  void runSql();
}
/** A change-feed row: its kind as a badge, the values; an update shows each changed value's old one struck out. */
function diffGrid(body) {
  const cols = body.columns.filter((c) => c.name !== '_change' && !(c.name.startsWith('_old_') && body.columns.some((k) => k.name === c.name.slice(5))));
  const rows = body.rows.map((r) => {
    const tr = el('tr', { class: `chg-${r._change}`, 'data-change': r._change });
    tr.append(el('td', {}, el('span', { class: `badge chg ${r._change}` }, r._change)));
    for (const c of cols) {
      const old = r[`_old_${c.name}`];
      const changed = r._change === 'update' && `_old_${c.name}` in r && cellText(old) !== cellText(r[c.name]);
      tr.append(el('td', { class: r[c.name] === null ? 'null' : undefined, title: cellText(r[c.name]) }, changed ? [el('del', {}, cellText(old)), ' ', cellText(r[c.name])] : cellText(r[c.name])));
    }
    return tr;
  });
  if (!rows.length) return el('p', { class: 'muted', style: 'padding: 8px' }, 'No rows differ between these versions.');
  return el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'change'), cols.map((c) => el('th', {}, c.name, el('small', {}, c.type))))), el('tbody', {}, rows));
}
$('diff-run').onclick = async () => {
  $('diff-error').textContent = '';
  $('diff-status').textContent = 'comparing…';
  const params = new URLSearchParams({ from: $('diff-from').value, to: $('diff-to').value });
  if ($('diff-key').value.trim()) params.set('key', $('diff-key').value.trim());
  try {
    const body = await (await api(`/v1/tables/${encodeURIComponent(explorerTable)}/changes?${params}`)).json();
    show('explorer-diff', diffGrid(body));
    const counts = {};
    for (const r of body.rows) counts[r._change] = (counts[r._change] || 0) + 1;
    const summary = ['insert', 'update', 'delete'].filter((k) => counts[k]).map((k) => `${counts[k]} ${k}${counts[k] === 1 ? '' : 's'}`).join(', ') || 'no changes';
    $('diff-status').textContent = `v${params.get('from')} → v${params.get('to')}: ${summary}${body.truncated ? ' (first rows only)' : ''} · ${body.elapsedMs} ms`;
  } catch (err) {
    $('diff-status').textContent = '';
    show('explorer-diff', el('p', { class: 'muted', style: 'padding: 8px' }, ''));
    $('diff-error').textContent = err.message;
  }
};
$('preview-prev').onclick = () => { previewPage = Math.max(0, previewPage - 1); void loadPreview(); };
$('preview-next').onclick = () => { previewPage += 1; void loadPreview(); };

// ---------- SQL ----------
let lastResult = null;
let chart = null;
function resultGrid(body) {
  return grid(body.columns.map((c) => el('span', {}, c.name, el('small', {}, c.type))), body.rows.map((r) => body.columns.map((c) => r[c.name] ?? null)), { empty: 'No rows.' });
}
const HISTORY = 'flashduck.history';
const history = () => JSON.parse(localStorage.getItem(HISTORY) || '[]');
function remember(sql) {
  const h = [sql, ...history().filter((s) => s !== sql)].slice(0, 50);
  localStorage.setItem(HISTORY, JSON.stringify(h));
  renderHistory();
}
function renderHistory() {
  $('history').replaceChildren(...history().map((s) => el('li', { title: s, onclick: () => { $('sql').value = s; } }, s)));
}
/** Forgets the shown result: its grid and its chart go, so nothing of an earlier query stays on screen. */
function clearResult() {
  lastResult = null;
  chart?.destroy();
  chart = null;
  show('result', el('p', { class: 'muted', style: 'padding: 8px' }, ''));
}
/** What the SQL view reads: `asOf` (every table as of that time) and `versions` (tables pinned), or nothing. */
function pins() {
  const out = {};
  if ($('as-of').value) out.asOf = new Date($('as-of').value).toISOString();
  const pairs = $('pin-versions').value.split(',').map((p) => p.trim()).filter(Boolean);
  if (pairs.length) {
    out.versions = {};
    for (const p of pairs) {
      const [t, v] = p.split('=').map((x) => x.trim());
      if (!t || !/^\d+$/.test(v || '')) throw new Error(`versions: write table=version (e.g. orders=3), not "${p}"`);
      out.versions[t] = Number(v);
    }
  }
  return out;
}
function renderPins() {
  let text = 'current versions';
  let cls = 'badge';
  try {
    const p = pins();
    const parts = [p.asOf ? `as of ${p.asOf.replace('.000Z', 'Z')}` : '', ...Object.entries(p.versions || {}).map(([t, v]) => `${t} v${v}`)].filter(Boolean);
    if (parts.length) [text, cls] = [`pinned: ${parts.join(', ')}`, 'badge applied'];
  } catch (err) {
    [text, cls] = [err.message, 'badge bad'];
  }
  $('pins-state').textContent = text;
  $('pins-state').className = cls;
}
$('as-of').addEventListener('input', renderPins);
$('pin-versions').addEventListener('input', renderPins);
$('pins-clear').onclick = () => {
  $('as-of').value = '';
  $('pin-versions').value = '';
  renderPins();
};
async function runSql() {
  const sql = $('sql').value.trim();
  if (!sql) return;
  $('sql-error').textContent = '';
  $('result-status').textContent = 'running…';
  clearResult();
  try {
    const body = await (await api('/v1/query', { json: { sql, ...pins() } })).json();
    lastResult = body;
    remember(sql);
    show('result', resultGrid(body));
    const versions = Object.entries(body.tables).map(([t, v]) => `${t} v${v}`).join(', ');
    const pinned = Object.keys(pins()).length ? ' (pinned)' : '';
    $('result-status').textContent = `${fmtNum(body.rowCount)} rows${body.truncated ? ' — truncated (the result has more rows than the limit)' : ''} · ${body.elapsedMs} ms${versions ? ` · read ${versions}${pinned}` : ''}`;
    const options = body.columns.map((c) => el('option', { value: c.name }, c.name));
    $('chart-x').replaceChildren(...options.map((o) => o.cloneNode(true)));
    $('chart-y').replaceChildren(...options.map((o) => o.cloneNode(true)));
    const numeric = body.columns.find((c, i) => i > 0 && /INT|DOUBLE|FLOAT|DECIMAL/.test(c.type));
    if (numeric) $('chart-y').value = numeric.name;
  } catch (err) {
    $('sql-error').textContent = err.message;
    $('result-status').textContent = '';
    clearResult();
  }
}
$('run').onclick = () => void runSql();
$('sql').addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
    e.preventDefault();
    void runSql();
  }
});
for (const b of document.querySelectorAll('[data-download]')) {
  b.addEventListener('click', async () => {
    const format = b.dataset.download;
    try {
      const res = await api('/v1/query', { json: { sql: $('sql').value, format, ...pins() } });
      const url = URL.createObjectURL(await res.blob());
      const ext = { csv: 'csv', parquet: 'parquet', arrow: 'arrows' }[format];
      el('a', { href: url, download: `flashduck-result.${ext}` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      $('sql-error').textContent = err.message;
    }
  });
}

/** A chart label: ISO timestamps shortened to the date, or the date and time (seconds only when not zero). */
function labelText(v) {
  const m = typeof v === 'string' ? /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?(\.\d+)?Z?$/.exec(v) : null;
  if (!m) return cellText(v);
  const seconds = m[3] && m[3] !== ':00' ? m[3] : '';
  return m[2] === '00:00' && !seconds ? m[1] : `${m[1]} ${m[2]}${seconds}`;
}
function drawChart() {
  if (!lastResult || !window.Chart) return;
  const type = $('chart-type').value;
  const x = $('chart-x').value;
  const y = $('chart-y').value;
  const num = (v) => (v === null ? null : Number(v));
  const data = type === 'scatter'
    ? { datasets: [{ label: `${y} by ${x}`, data: lastResult.rows.map((r) => ({ x: num(r[x]), y: num(r[y]) })), backgroundColor: '#c2410c' }] }
    : { labels: lastResult.rows.map((r) => labelText(r[x])), datasets: [{ label: y, data: lastResult.rows.map((r) => num(r[y])), backgroundColor: '#fb923c', borderColor: '#c2410c' }] };
  chart?.destroy();
  chart = new window.Chart($('chart'), { type, data, options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: true } } } });
}
$('chart-draw').onclick = drawChart;

function renderCompareTables() {
  const current = $('compare-table').value;
  $('compare-table').replaceChildren(...status.tables.map((t) => el('option', { value: t.name, selected: t.name === current }, t.name)));
}
onStatus(renderCompareTables);
$('compare').onclick = async () => {
  const table = $('compare-table').value;
  if (!table) return;
  show('compare-result', el('p', { class: 'muted', style: 'padding: 8px' }, 'timing…'));
  try {
    const r = await (await api(`/v1/tables/${encodeURIComponent(table)}/compare`, { json: {} })).json();
    show('compare-result', grid(['query', 'FlashDuck (cache)', `DuckDB re-reading ${r.files} files`, 'speed-up'],
      r.results.map((q) => [q.query, `${q.flashduckMs} ms`, `${q.filesMs} ms`, el('span', { class: 'badge ok' }, `${q.speedup}×`)])));
  } catch (err) {
    show('compare-result', el('div', { class: 'error' }, err.message));
  }
};

// ---------- Writes ----------
let writeRows = [];
let writeColumns = [];
const writeLog = [];
function renderWriteTables() {
  $('write-tables').replaceChildren(...status.tables.map((t) => el('option', { value: t.name })));
}
onStatus(renderWriteTables);
function parseCell(text) {
  const t = text.trim();
  if (t === '' || t === 'NULL') return null;
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t) && !/^-?0\d/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  return t;
}
function renderWriteGrid() {
  const headers = ['✓', ...writeColumns];
  const rows = writeRows.map((row, i) => {
    const tr = el('tr', { class: row.__edited ? 'edited' : undefined });
    tr.append(el('td', {}, el('input', { type: 'checkbox', 'aria-label': `select row ${i + 1}`, onchange: (e) => { row.__selected = e.target.checked; } })));
    for (const c of writeColumns) {
      tr.append(el('td', { contenteditable: 'true', 'data-col': c, oninput: (e) => { row[c] = parseCell(e.target.textContent); row.__edited = true; tr.className = 'edited'; } }, row[c] === null || row[c] === undefined ? '' : cellText(row[c])));
    }
    return tr;
  });
  show('write-grid', writeRows.length ? el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows)) : el('p', { class: 'muted', style: 'padding: 8px' }, 'Load rows of a table, or add a row.'));
}
let writeGridTable = null;
/** Loads (or reloads) rows of a table into the grid: the first 20, by the key when one is given. */
async function loadWriteGrid(table) {
  $('write-error').textContent = '';
  try {
    const key = $('write-key').value.split(',').map((s) => s.trim()).filter(Boolean);
    const order = key.length ? ` ORDER BY ${key.map((k) => `"${k.replace(/"/g, '""')}"`).join(', ')}` : '';
    let body;
    try {
      body = await (await api('/v1/query', { json: { sql: `SELECT * FROM "${table.replace(/"/g, '""')}"${order} LIMIT 20` } })).json();
    } catch {
      body = await (await api('/v1/query', { json: { sql: `SELECT * FROM "${table.replace(/"/g, '""')}" LIMIT 20` } })).json();
    }
    writeColumns = body.columns.map((c) => c.name);
    writeRows = body.rows.map((r) => ({ ...r }));
    writeGridTable = table;
    if (!$('write-key').value) $('write-key').value = writeColumns[0] || '';
    renderWriteGrid();
  } catch (err) {
    $('write-error').textContent = err.message;
  }
}
$('write-load').onclick = () => void loadWriteGrid($('write-table').value.trim());
$('write-add').onclick = () => {
  if (!writeColumns.length) writeColumns = ($('write-key').value || 'id').split(',').map((s) => s.trim()).filter(Boolean);
  writeRows.push({ __edited: true });
  renderWriteGrid();
};
const clean = (row) => Object.fromEntries(Object.entries(row).filter(([k]) => !k.startsWith('__')));
function parsePasted(text) {
  const t = text.trim();
  if (!t) return [];
  try {
    const v = JSON.parse(t);
    return Array.isArray(v) ? v : [v];
  } catch {}
  if (t.startsWith('{')) return t.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  const lines = t.split(/\r?\n/).filter((l) => l.trim());
  const header = lines[0].split(',').map((h) => h.trim());
  return lines.slice(1).map((l) => {
    const cells = l.split(',');
    return Object.fromEntries(header.map((h, i) => [h, parseCell(cells[i] ?? '')]));
  });
}
async function submitWrite(op, rows) {
  $('write-error').textContent = '';
  const table = $('write-table').value.trim();
  const key = $('write-key').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!table || !key.length) {
    $('write-error').textContent = 'Give the table and its key column(s).';
    return;
  }
  if (!rows.length) {
    $('write-error').textContent = op === 'upsert' ? 'No edited rows to upsert.' : 'No rows selected to delete.';
    return;
  }
  const body = op === 'delete' ? rows.map((r) => Object.fromEntries(key.map((k) => [k, r[k]]))) : rows;
  try {
    const { writeId } = await (await api(`/v1/tables/${encodeURIComponent(table)}/${op}`, { json: { key, rows: body } })).json();
    const entry = { writeId, op, table, rows: body.length, status: 'pending', at: new Date().toISOString() };
    writeLog.unshift(entry);
    renderWriteLog();
    void trackWrite(entry);
    for (const r of writeRows) delete r.__edited;
  } catch (err) {
    $('write-error').textContent = err.message;
  }
}
async function trackWrite(entry) {
  for (let i = 0; i < 600 && entry.status !== 'visible' && entry.status !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 250));
    try {
      const s = await (await api(`/v1/writes/${encodeURIComponent(entry.writeId)}`)).json();
      entry.status = s.status;
      entry.version = s.version;
      entry.error = s.error;
      renderWriteLog();
      // The grid shows the table as it is now, the write included.
      if (entry.status === 'visible' && writeGridTable === entry.table) await loadWriteGrid(entry.table);
    } catch {}
  }
}
function renderWriteLog() {
  show('write-log', grid(['write', 'table', 'op', 'rows', 'status', 'queued', 'detail'],
    writeLog.map((w) => [w.writeId, w.table, w.op, w.rows, el('span', { class: `badge ${w.status}`, 'data-write-status': w.writeId }, w.status), ago(w.at), w.error ?? (w.version ? `visible in v${w.version}` : '')]),
    { empty: 'No writes from this page yet.' }));
}
$('write-upsert').onclick = () => void submitWrite('upsert', writeRows.filter((r) => r.__edited).map(clean));
$('write-delete').onclick = () => void submitWrite('delete', writeRows.filter((r) => r.__selected).map(clean));
$('paste-upsert').onclick = () => { try { void submitWrite('upsert', parsePasted($('write-paste').value)); } catch (e) { $('write-error').textContent = `The pasted rows are not JSON, NDJSON or CSV: ${e.message}`; } };
$('paste-delete').onclick = () => { try { void submitWrite('delete', parsePasted($('write-paste').value)); } catch (e) { $('write-error').textContent = `The pasted rows are not JSON, NDJSON or CSV: ${e.message}`; } };

// ---------- Cache ----------
function renderCache() {
  show('cache-tables', grid(['table', 'version', 'parts', 'bytes', 'made by', 'rows', 'build', 'source generation', 'built'],
    status.tables.map((t) => [t.name, t.version, t.snapshot.parts.length, fmtBytes(t.snapshot.bytes), t.snapshot.cause, t.rows, `${t.snapshot.buildMs} ms`, t.snapshot.sourceGeneration, ago(t.updatedAt)])));
  const queues = status.components.filter((c) => c.info?.queue).map((c) => [c.component, c.instance, c.info.queue.wait ?? 0, c.info.queue.active ?? 0, c.info.queue.delayed ?? 0, c.info.queue.failed ?? 0]);
  show('cache-queues', grid(['consumer', 'instance', 'waiting', 'active', 'delayed', 'failed'], queues, { empty: 'No cacher or exporter is alive.' }));
  show('cache-streams', grid(['table', 'stream length', 'pending', 'lag', 'dead letters', 'last applied'],
    status.writes.map((w) => [w.table, w.length, w.pending, w.lag ?? '?', w.deadLetters, w.applied ?? '-']), { empty: 'No writes yet.' }));
}
onStatus(renderCache);

// ---------- Exports ----------
function renderExports() {
  const byTable = new Map(status.exports.map((e) => [e.table, e]));
  const failures = new Map((status.exportFailures ?? []).map((f) => [f.table, f]));
  const failed = (t) => {
    const f = failures.get(t);
    return f ? el('span', { class: 'export-failure', title: f.message }, `v${f.version} failed ${ago(f.failedAt)}: ${f.message}`) : null;
  };
  show('exports', grid(['table', 'exported version', 'snapshot version', 'rows', 'size', 'written', 'download'],
    status.tables.map((t) => {
      const e = byTable.get(t.name);
      if (!e) return [t.name, '-', t.version, '-', '-', failed(t.name) ?? 'not exported yet', ''];
      return [t.name, e.version, t.version, fmtNum(e.rows), fmtBytes(e.bytes), failed(t.name) ?? ago(e.exportedAt),
        el('span', {}, el('a', { href: withToken(`/v1/exports/${t.name}.parquet`), download: `${t.name}.parquet` }, 'Parquet'), ' · ', el('a', { href: withToken(`/v1/exports/${t.name}.manifest.json`), download: `${t.name}.manifest.json` }, 'manifest'))];
    })));
}
onStatus(renderExports);

// ---------- navigation and live updates ----------
function route() {
  const view = (location.hash || '#status').slice(1);
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.view === view);
  if (view === 'explorer' && !explorerTable && status.tables[0]) void openTable(status.tables[0].name);
}
window.addEventListener('hashchange', route);

function listen() {
  const es = new EventSource(withToken('/v1/events'));
  es.onopen = () => { $('live').textContent = '● live'; $('live').classList.add('on'); };
  es.onerror = () => { $('live').textContent = 'reconnecting…'; $('live').classList.remove('on'); };
  for (const type of ['snapshot', 'dropped']) {
    es.addEventListener(type, () => {
      void refreshStatus().then(() => {
        if (explorerTable) void Promise.all([loadPreview(), loadVersions()]);
      });
    });
  }
}

renderHistory();
renderWriteGrid();
renderWriteLog();
route();
await refreshStatus();
route();
listen();
setInterval(refreshStatus, 5000);
