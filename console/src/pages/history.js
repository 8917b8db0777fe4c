// Query history: the tenant's data query jobs, status filter, paging,
// re-run and download.
import { useEffect, useState } from 'preact/hooks';
import { call, items } from '../api.js';
import { html, ErrorBox, Pager, StatusBadge, draft, fmtNumber, fmtTime, queryDone } from '../ui.js';
import { DEFAULT_OPTIONS, submitQuery } from './query.js';

const STATUSES = ['accepted', 'in_progress', 'completed', 'failed', 'cancelled'];

export function HistoryPage() {
  const [status, setStatus] = useState('');
  const [page, setPage] = useState(1);
  const [body, setBody] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stop = false;
    call('GET', '/query/jobs', { query: { queryStatus: status, page, pageSize: 20 } })
      .then((b) => !stop && (setBody(b), setError(null)), (e) => !stop && setError(e));
    return () => (stop = true);
  }, [status, page, tick]);
  const jobs = body ? items(body) : [];
  useEffect(() => {
    if (!jobs.some((j) => !queryDone(j.queryStatus))) return undefined;
    const t = setTimeout(() => setTick(tick + 1), 1500);
    return () => clearTimeout(t);
  }, [body]);
  const rerun = async (job) => {
    setError(null);
    try {
      const options = { ...DEFAULT_OPTIONS, outputFormat: job.outputFormat || 'CSV', compression: job.compression || 'NONE' };
      if (job.columnSeparator) options.columnSeparator = job.columnSeparator;
      if (job.readDeleted) options.readDeleted = true;
      const created = await submitQuery(job.query, options);
      draft.value = { query: job.query, options, job: created };
      location.hash = '#/query';
    } catch (e) {
      setError(e);
    }
  };
  return html`<section aria-labelledby="history-title">
    <h1 id="history-title">Query history</h1>
    <div class="row">
      <label>Status
        <select value=${status} onChange=${(e) => { setStatus(e.target.value); setPage(1); }}>
          <option value="">All</option>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
      <button type="button" onClick=${() => setTick(tick + 1)}>Refresh</button>
    </div>
    <${ErrorBox} error=${error} />
    ${body === null ? html`<p aria-busy="true">Loading…</p>` : jobs.length === 0 ? html`<p>No queries${status ? ` with status ${status}` : ''}.</p>` : html`
    <div class="scroll"><table class="list" aria-label="Data query jobs">
      <thead><tr><th>Status</th><th>SQL</th><th>Rows</th><th>Format</th><th>Created</th><th>Actions</th></tr></thead>
      <tbody>${jobs.map((j) => html`<tr key=${j.id} data-job=${j.id}>
        <td><${StatusBadge} status=${j.queryStatus} /></td>
        <td><code class="sql">${j.query.length > 100 ? `${j.query.slice(0, 100)}…` : j.query}</code>
          ${j.errorMessage && html`<div class="error small">${j.errorMessage}</div>`}</td>
        <td>${fmtNumber(j.outputRows)}</td>
        <td>${j.outputFormat}${j.compression && j.compression !== 'NONE' ? ` · ${j.compression}` : ''}</td>
        <td>${fmtTime(j.createdOn || j.updatedOn)}</td>
        <td class="actions">
          <button type="button" onClick=${() => rerun(j)}>Re-run</button>
          ${j.dataFile && html`<a class="button" href=${j.dataFile} target="_blank" rel="noopener">Download</a>`}
        </td>
      </tr>`)}</tbody>
    </table></div>
    <${Pager} previous=${body.previousPage} next=${body.nextPage} onPrevious=${() => setPage(body.previousPage)} onNext=${() => setPage(body.nextPage)} label="query history pages" />`}
  </section>`;
}
