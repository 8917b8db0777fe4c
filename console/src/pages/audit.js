// Audit trail: a meter's entries (the API's filters, cursor paging, each
// payload as formatted JSON) and the summary as a chart next to its table.
import { useEffect, useRef, useState } from 'preact/hooks';
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from 'chart.js';
import { call, capabilities, items, summaryGroups } from '../api.js';
import { html, ErrorBox, fmtNumber, fmtTime, isoFromLocal } from '../ui.js';
import { meterStore, RUN_STATUSES } from './downloads.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const GROUP_FIELDS = ['sessionId', 'operatorId', 'errorCode'];

function Filters({ value, onApply }) {
  const [f, setF] = useState(value);
  const set = (name) => (e) => setF({ ...f, [name]: e.target.value });
  return html`<form class="card grid" aria-label="Audit trail filters" onSubmit=${(e) => { e.preventDefault(); localStorage.setItem('auditx.meter', f.meter); onApply(f); }}>
    <label>Meter id<input name="meter" inputMode="numeric" pattern="[0-9]+" required value=${f.meter} onInput=${set('meter')} /></label>
    <label>Records<select name="exportType" value=${f.exportType} onChange=${set('exportType')}>
      <option value="SAMPLE">SAMPLE</option><option value="ERROR">ERROR</option></select></label>
    <label>Run type<select name="runType" value=${f.runType} onChange=${set('runType')}>
      <option value="NORMAL">NORMAL</option><option value="DEBUG">DEBUG</option></select></label>
    <label>From (UTC)<input name="from" type="datetime-local" required value=${f.from} onInput=${set('from')} /></label>
    <label>To (UTC)<input name="to" type="datetime-local" required value=${f.to} onInput=${set('to')} /></label>
    <label>Session id<input name="sessionId" value=${f.sessionId} onInput=${set('sessionId')} /></label>
    <label>Operator id<input name="operatorId" value=${f.operatorId} onInput=${set('operatorId')} /></label>
    <label>Run status<select name="runStatus" value=${f.runStatus} onChange=${set('runStatus')}>
      <option value="">any</option>${RUN_STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
    <label>Page size<select name="pageSize" value=${f.pageSize} onChange=${set('pageSize')}>
      ${[10, 30, 100, 500].map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
    <div class="row end"><button type="submit" class="primary">Apply</button></div>
  </form>`;
}

function entryQuery(f) {
  return {
    exportType: f.exportType, runType: f.runType,
    queryFromTime: isoFromLocal(f.from), queryToTime: isoFromLocal(f.to),
    sessionId: f.sessionId.trim(), operatorId: f.operatorId.trim(),
    runStatuses: f.runStatus ? [f.runStatus] : undefined, pageSize: f.pageSize,
  };
}

/// A page of entries; the reference names single `sessionId` /
/// `operatorId`, older servers the plural arrays.
async function entries(filters, cursor) {
  const path = `/meters/${encodeURIComponent(filters.meter)}/auditTrail/entries`;
  const query = { ...entryQuery(filters), cursor };
  if (!(await capabilities()).entriesSingularFilters) {
    const { sessionId, operatorId, ...rest } = query;
    return call('GET', path, { query: { ...rest, sessionIds: sessionId, operatorIds: operatorId } });
  }
  return call('GET', path, { query });
}

function Entries({ filters }) {
  const [cursors, setCursors] = useState([null]);
  const [body, setBody] = useState(null);
  const [error, setError] = useState(null);
  const [open, setOpen] = useState({});
  useEffect(() => setCursors([null]), [filters]);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    let stop = false;
    setError(null);
    entries(filters, cursor)
      .then((b) => !stop && setBody(b), (e) => !stop && (setBody({ data: [] }), setError(e)));
    return () => (stop = true);
  }, [filters, cursor]);
  const rows = body ? items(body) : [];
  return html`<section aria-labelledby="entries-title">
    <h2 id="entries-title">Entries <span class="muted small">page ${cursors.length}</span></h2>
    <${ErrorBox} error=${error} />
    ${body === null ? html`<p aria-busy="true">Loading…</p>` : rows.length === 0 ? html`<p>No entries match.</p>` : html`
    <div class="scroll"><table class="list" aria-label="Audit trail entries">
      <thead><tr><th>Time</th><th>Session</th><th>Operator</th><th>Error</th><th>Event id</th><th>Payload</th></tr></thead>
      <tbody>${rows.map((r, i) => {
        const key = `${r.eventId}-${i}`;
        return html`<tr key=${key} data-entry=${r.eventId}>
          <td class="small">${fmtTime(r.eventTime || r.errorTime)}</td>
          <td>${r.sessionId || '—'}</td>
          <td class="small">${r.operatorName || r.operatorType || '—'}<div class="muted">${r.operatorId || ''}</div></td>
          <td class="small">${r.errorCode ? html`<strong>${r.errorCode}</strong> ${r.errorMessage || ''}` : '—'}</td>
          <td class="small mono">${r.eventId}</td>
          <td><button type="button" class="link" aria-expanded=${!!open[key]} onClick=${() => setOpen({ ...open, [key]: !open[key] })}>${open[key] ? 'Hide' : 'Show'} payload</button>
            ${open[key] && html`<pre class="json" tabIndex="0">${JSON.stringify(r.payload ?? null, null, 2)}</pre>`}</td>
        </tr>`;
      })}</tbody>
    </table></div>`}
    <nav class="pager" aria-label="entry pages">
      <button type="button" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>← Previous</button>
      <button type="button" disabled=${!body?.nextPage} onClick=${() => setCursors([...cursors, body.nextPage])}>Next →</button>
    </nav>
  </section>`;
}

async function summarize(f, groupBy) {
  const body = {
    runType: f.runType, queryFromTime: isoFromLocal(f.from), queryToTime: isoFromLocal(f.to), groupBy,
  };
  if (f.sessionId.trim()) body.sessionIds = [f.sessionId.trim()];
  if (f.operatorId.trim()) body.operatorIds = [f.operatorId.trim()];
  if (f.runStatus) body.runStatuses = [f.runStatus];
  const path = `/meters/${encodeURIComponent(f.meter)}/summary`;
  if (!(await capabilities()).summaryNeedsExportType) {
    return summaryGroups(await call('POST', path, { body }), groupBy);
  }
  // A server whose summary counts one record type per call: both, merged.
  const [ok, bad] = await Promise.all(['SAMPLE', 'ERROR'].map(async (exportType) =>
    summaryGroups(await call('POST', path, { body: { ...body, exportType } }), groupBy, exportType)));
  const merged = new Map();
  for (const g of [...ok, ...bad]) {
    const key = JSON.stringify(groupBy.map((d) => g.dims[d] ?? null));
    const m = merged.get(key) || { dims: g.dims, output: 0, errors: 0 };
    m.output += g.output;
    m.errors += g.errors;
    merged.set(key, m);
  }
  return [...merged.values()].sort((a, b) => b.output + b.errors - (a.output + a.errors));
}

function SummaryChart({ groups, groupBy }) {
  const canvas = useRef(null);
  useEffect(() => {
    const shown = groups.slice(0, 30);
    const chart = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: shown.map((g) => groupBy.map((d) => g.dims[d] ?? '∅').join(' · ') || 'all'),
        datasets: [
          { label: 'Output (success)', data: shown.map((g) => g.output), backgroundColor: '#2e7d32' },
          { label: 'Errors', data: shown.map((g) => g.errors), backgroundColor: '#c62828' },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      },
    });
    return () => chart.destroy();
  }, [groups]);
  const total = groups.reduce((n, g) => n + g.output + g.errors, 0);
  return html`<div class="chart"><canvas ref=${canvas} role="img" data-summary-chart
    aria-label=${`Summary chart: ${groups.length} groups, ${total} records`}></canvas></div>`;
}

function Summary({ filters }) {
  const [groupBy, setGroupBy] = useState(['sessionId']);
  const [groups, setGroups] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      setGroups(await summarize(filters, groupBy));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    run();
  }, [filters]);
  return html`<section aria-labelledby="summary-title">
    <h2 id="summary-title">Summary</h2>
    <fieldset class="row">
      <legend>Group by</legend>
      ${GROUP_FIELDS.map((f) => html`<label class="check"><input type="checkbox" checked=${groupBy.includes(f)}
        onChange=${(e) => setGroupBy(e.target.checked ? [...groupBy, f] : groupBy.filter((g) => g !== f))} /> ${f}</label>`)}
      <button type="button" onClick=${run} disabled=${busy}>Summarize</button>
    </fieldset>
    <${ErrorBox} error=${error} />
    ${groups && (groups.length === 0 ? html`<p>Nothing to summarize in this range.</p>` : html`<div class="split">
      <${SummaryChart} groups=${groups} groupBy=${groupBy} />
      <div class="scroll"><table class="list" aria-label="Summary table">
        <thead><tr>${groupBy.map((d) => html`<th>${d}</th>`)}<th>Output</th><th>Errors</th></tr></thead>
        <tbody>${groups.map((g, i) => html`<tr key=${i}>${groupBy.map((d) => html`<td>${g.dims[d] ?? '∅'}</td>`)}
          <td>${fmtNumber(g.output)}</td><td>${fmtNumber(g.errors)}</td></tr>`)}</tbody>
      </table></div>
    </div>`)}
  </section>`;
}

export function AuditPage() {
  const day = new Date().toISOString().slice(0, 10);
  const [filters, setFilters] = useState({
    meter: meterStore(), exportType: 'SAMPLE', runType: 'NORMAL', from: `${day}T00:00`, to: `${day}T23:59`,
    sessionId: '', operatorId: '', runStatus: '', pageSize: 30,
  });
  return html`<section aria-labelledby="audit-title">
    <h1 id="audit-title">Audit trail</h1>
    <${Filters} value=${filters} onApply=${setFilters} />
    <${Summary} filters=${filters} />
    <${Entries} filters=${filters} />
  </section>`;
}
