// Download Center: a meter's export jobs (status, session ids, time frame,
// records, exported at, files), a new export with every filter and format,
// progress while it runs, cancel.
import { useEffect, useState } from 'preact/hooks';
import { call, download, items } from '../api.js';
import { html, ErrorBox, Pager, StatusBadge, exportDone, fmtNumber, fmtTime, isoFromLocal } from '../ui.js';

export const RUN_STATUSES = ['NEVER_RUN', 'TESTING', 'TESTING_FAILED', 'TESTING_PASSED', 'RUNNING', 'PAUSED', 'COMPLETED',
  'FAILED', 'CANCELED', 'INITIALIZING', 'USAGE_PUSHING', 'PUSH_COMPLETED', 'CONSUME_COMPLETED'];

const split = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

export function meterStore() {
  return localStorage.getItem('auditx.meter') || '1001';
}

function Progress({ job }) {
  const p = job.progress || {};
  const percent = Number(p.percent ?? (exportDone(job.status) && job.status === 'FINISHED' ? 100 : 0));
  return html`<div class="progress-wrap">
    <progress max="100" value=${percent} aria-label=${`export ${job.requestId} progress`}>${percent}%</progress>
    <span class="small">${percent}%${p.rows ? ` · ${fmtNumber(p.rows)} rows` : ''}</span>
  </div>`;
}

function NewExport({ meter, onCreated }) {
  const today = new Date().toISOString().slice(0, 10);
  const [form, setForm] = useState({
    exportType: 'SAMPLE', runType: 'NORMAL', from: `${today}T00:00`, to: `${today}T23:59`,
    sessionIds: '', operatorIds: '', runStatuses: [], format: 'csv',
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = await call('POST', `/meters/${encodeURIComponent(meter)}/auditTrail/export`, {
        query: {
          exportType: form.exportType, runType: form.runType,
          queryFromTime: isoFromLocal(form.from), queryToTime: isoFromLocal(form.to),
          sessionIds: split(form.sessionIds), operatorIds: split(form.operatorIds),
          runStatuses: form.runStatuses, format: form.format,
        },
      });
      onCreated(body.data?.requestId || body.data?.id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card" onSubmit=${submit} aria-label="New export">
    <h2>New export</h2>
    <div class="grid">
      <label>Records
        <select name="exportType" value=${form.exportType} onChange=${set('exportType')}>
          <option value="SAMPLE">Processed records (SAMPLE)</option><option value="ERROR">Error records (ERROR)</option>
        </select></label>
      <label>Run type
        <select name="runType" value=${form.runType} onChange=${set('runType')}>
          <option value="NORMAL">Normal (live)</option><option value="DEBUG">Debug (test)</option>
        </select></label>
      <label>From (UTC)<input name="from" type="datetime-local" required value=${form.from} onInput=${set('from')} /></label>
      <label>To (UTC)<input name="to" type="datetime-local" required value=${form.to} onInput=${set('to')} /></label>
      <label>Session ids<input name="sessionIds" placeholder="R-000001, R-000002" value=${form.sessionIds} onInput=${set('sessionIds')} /></label>
      <label>Operator ids<input name="operatorIds" value=${form.operatorIds} onInput=${set('operatorIds')} /></label>
      <label>Run statuses
        <select name="runStatuses" multiple size="4" onChange=${(e) => setForm({ ...form, runStatuses: [...e.target.selectedOptions].map((o) => o.value) })}>
          ${RUN_STATUSES.map((s) => html`<option value=${s} selected=${form.runStatuses.includes(s)}>${s}</option>`)}
        </select></label>
      <label>Format
        <select name="format" value=${form.format} onChange=${set('format')}>
          <option value="csv">CSV</option><option value="jsonl">JSON Lines</option><option value="parquet">Parquet</option>
        </select></label>
    </div>
    <button type="submit" class="primary" disabled=${busy}>Create export</button>
    <${ErrorBox} error=${error} />
  </form>`;
}

function Files({ job, setError }) {
  const files = job.fileList || [];
  if (!files.length) return html`<span class="muted">—</span>`;
  const get = async (key) => {
    setError(null);
    try {
      const body = await call('GET', '/meters/auditTrail/presignedUrl', { query: { fileKey: key } });
      const url = typeof body.data === 'string' ? body.data : body.data?.url || body.data?.presignedUrl;
      download(url);
    } catch (e) {
      setError(e);
    }
  };
  return html`<ul class="files">${files.map((key) => html`<li key=${key}>
    <button type="button" class="link" data-file=${key} onClick=${() => get(key)}>⬇ ${key.split('/').pop()}</button></li>`)}
    ${job.manifestKey && html`<li><button type="button" class="link" onClick=${() => get(job.manifestKey)}>⬇ manifest</button></li>`}
  </ul>`;
}

export function DownloadsPage() {
  const [meter, setMeter] = useState(meterStore());
  const [meterInput, setMeterInput] = useState(meter);
  const [filter, setFilter] = useState({ exportType: '', sessionIds: '' });
  const [page, setPage] = useState(1);
  const [body, setBody] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState(null);
  useEffect(() => {
    let stop = false;
    call('GET', `/meters/${encodeURIComponent(meter)}/auditTrail/export`, {
      query: { exportType: filter.exportType, sessionIds: split(filter.sessionIds), page, pageSize: 10 },
    }).then((b) => !stop && (setBody(b), setError(null)), (e) => !stop && (setBody({ data: [] }), setError(e)));
    return () => (stop = true);
  }, [meter, filter, page, tick]);
  const jobs = body ? items(body) : [];
  useEffect(() => {
    if (!jobs.some((j) => !exportDone(j.status))) return undefined;
    const t = setTimeout(() => setTick((n) => n + 1), 1000);
    return () => clearTimeout(t);
  }, [body]);
  const cancel = async (job) => {
    setError(null);
    try {
      await call('DELETE', `/meters/${encodeURIComponent(meter)}/auditTrail/export/${encodeURIComponent(job.requestId)}`);
      setNotice(`Cancel requested for ${job.requestId}.`);
      setTick(tick + 1);
    } catch (e) {
      setError(e);
    }
  };
  const next = body?.nextPage ?? body?.data?.nextPage;
  const previous = body?.previousPage ?? body?.data?.previousPage;
  return html`<section aria-labelledby="dc-title">
    <h1 id="dc-title">Download Center</h1>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); localStorage.setItem('auditx.meter', meterInput); setMeter(meterInput); setPage(1); }}>
      <label>Meter id<input name="meter" inputMode="numeric" pattern="[0-9]+" required value=${meterInput} onInput=${(e) => setMeterInput(e.target.value)} /></label>
      <button type="submit">Show</button>
      <label>Records
        <select value=${filter.exportType} onChange=${(e) => { setFilter({ ...filter, exportType: e.target.value }); setPage(1); }}>
          <option value="">All</option><option value="SAMPLE">SAMPLE</option><option value="ERROR">ERROR</option>
        </select></label>
      <label>Session ids<input value=${filter.sessionIds} onChange=${(e) => { setFilter({ ...filter, sessionIds: e.target.value }); setPage(1); }} /></label>
      <button type="button" class="primary" aria-expanded=${creating} onClick=${() => setCreating(!creating)}>${creating ? 'Close' : 'New export'}</button>
    </form>
    ${creating && html`<${NewExport} meter=${meter} onCreated=${(id) => { setCreating(false); setNotice(`Export ${id} created.`); setPage(1); setTick(tick + 1); }} />`}
    ${notice && html`<p class="ok" role="status">${notice}</p>`}
    <${ErrorBox} error=${error} />
    ${body === null ? html`<p aria-busy="true">Loading…</p>` : jobs.length === 0 ? html`<p>No exports of meter ${meter}.</p>` : html`
    <div class="scroll"><table class="list" aria-label=${`Exports of meter ${meter}`}>
      <thead><tr><th>Status</th><th>Records</th><th>Session ids</th><th>Time frame</th><th>Count</th><th>Exported at</th><th>Files</th><th></th></tr></thead>
      <tbody>${jobs.map((j) => html`<tr key=${j.requestId} data-export=${j.requestId}>
        <td><${StatusBadge} status=${j.status} />${!exportDone(j.status) && html`<${Progress} job=${j} />`}
          ${j.error && html`<div class="error small">${j.error}</div>`}
          <div class="muted small">${j.requestId}</div></td>
        <td>${j.query?.exportType} · ${j.query?.runType} · ${(j.query?.format || 'csv').toUpperCase()}</td>
        <td>${(j.query?.sessionIds || []).join(', ') || 'all'}</td>
        <td class="small">${fmtTime(j.query?.queryFromTime)}<br />${fmtTime(j.query?.queryToTime)}</td>
        <td data-count>${fmtNumber(j.count)}</td>
        <td class="small">${fmtTime(j.completionTime)}</td>
        <td><${Files} job=${j} setError=${setError} /></td>
        <td>${!exportDone(j.status) && !j.cancelRequested && html`<button type="button" class="danger" onClick=${() => cancel(j)}>Cancel</button>`}</td>
      </tr>`)}</tbody>
    </table></div>
    <${Pager} previous=${previous} next=${next} onPrevious=${() => setPage(previous)} onNext=${() => setPage(next)} label="export pages" />`}
  </section>`;
}
