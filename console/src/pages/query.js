// Data Query: the editor, every option of the submit API, Run, the job's
// status until it ends, Download, Save.
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, capabilities } from '../api.js';
import { SqlEditor, textOf } from '../editor.js';
import { SchemaBrowser, useSchema } from '../schema.js';
import { html, ErrorBox, StatusBadge, draft, fmtNumber, fmtTime, queryDone } from '../ui.js';

export const DEFAULT_OPTIONS = {
  outputFormat: 'CSV',
  columnSeparator: '|',
  compression: 'NONE',
  readDeleted: false,
  useIndexJoin: false,
  sourceData: 'LIVE',
  warehouseSize: '',
  encryptionKey: '',
};

/// The submit body for `query` and `options`: what the reference takes,
/// leaving out options at their defaults (older servers refuse fields they
/// do not know).
export function submitBody(query, options) {
  const body = { query, outputFormat: options.outputFormat, compression: options.compression };
  if (options.outputFormat === 'DSV') body.columnSeparator = options.columnSeparator;
  if (options.readDeleted) body.readDeleted = true;
  if (options.useIndexJoin) body.useIndexJoin = true;
  if (options.sourceData && options.sourceData !== 'LIVE') body.sourceData = options.sourceData;
  if (options.warehouseSize) body.warehouseSize = options.warehouseSize;
  if (options.encryptionKey?.trim()) body.encryptionKey = options.encryptionKey.trim();
  return body;
}

/// Submits a data query (with the reference's `output` object when this
/// server requires it).
export async function submitQuery(query, options) {
  const body = submitBody(query, options);
  if ((await capabilities()).submitNeedsOutput) body.output = { target: 'S3' };
  return (await call('POST', '/query/jobs', { body })).data;
}

/// Follows a query job until it ends.
export function useQueryJob(initial) {
  const [job, setJob] = useState(initial);
  const [error, setError] = useState(null);
  const id = job?.id;
  const status = job?.queryStatus;
  useEffect(() => {
    if (!id || queryDone(status)) return undefined;
    const timer = setTimeout(async () => {
      try {
        setJob((await call('GET', `/query/jobs/${encodeURIComponent(id)}`)).data);
      } catch (e) {
        setError(e);
      }
    }, 700);
    return () => clearTimeout(timer);
  }, [id, status, job?.updatedOn]);
  return [job, setJob, error, setError];
}

export function JobStatus({ job, error }) {
  if (!job) return html`<${ErrorBox} error=${error} />`;
  const done = queryDone(job.queryStatus);
  return html`<section class="card" aria-label="Query job" aria-live="polite" data-query-id=${job.id}>
    <p><${StatusBadge} status=${job.queryStatus} /> ${!done && html`<span class="spinner" aria-hidden="true"></span>`}
      <span class="muted"> job ${job.id}</span></p>
    <dl class="facts">
      <dt>Rows</dt><dd data-output-rows>${fmtNumber(job.outputRows)}</dd>
      <dt>Processing time</dt><dd>${job.processingTime ?? 0} ms</dd>
      <dt>Format</dt><dd>${job.outputFormat || '—'} ${job.compression && job.compression !== 'NONE' ? `(${job.compression})` : ''}</dd>
      <dt>Updated</dt><dd>${fmtTime(job.updatedOn)}</dd>
    </dl>
    ${job.dataFile && html`<p><a class="button primary" href=${job.dataFile} target="_blank" rel="noopener" data-download>Download result</a></p>`}
    ${job.errorMessage && html`<p class="error" role="alert">The query ${job.queryStatus}: ${job.errorMessage}</p>`}
    <${ErrorBox} error=${error} />
  </section>`;
}

export function QueryPage() {
  const start = draft.value || {};
  draft.value = null;
  const [tables, schemaError] = useSchema();
  const initial = start.query || 'SELECT id, username, createddate\nFROM auditloginevent\nORDER BY createddate DESC\nLIMIT 100';
  const [options, setOptions] = useState({ ...DEFAULT_OPTIONS, ...(start.options || {}) });
  const [showSchema, setShowSchema] = useState(false);
  const [submitError, setSubmitError] = useState(null);
  const [running, setRunning] = useState(false);
  const [job, setJob, jobError, setJobError] = useQueryJob(start.job || null);
  const [saveName, setSaveName] = useState(start.name || '');
  const [saved, setSaved] = useState(null);
  const editor = useRef(null);
  const set = (name) => (e) => setOptions({ ...options, [name]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });

  const run = async () => {
    if (running) return;
    setSubmitError(null);
    setJobError(null);
    setRunning(true);
    try {
      setJob(await submitQuery(textOf(editor), options));
    } catch (e) {
      setSubmitError(e);
    } finally {
      setRunning(false);
    }
  };
  const save = async (e) => {
    e.preventDefault();
    setSaved(null);
    setSubmitError(null);
    try {
      const body = { name: saveName, query: textOf(editor), ...options };
      if (options.outputFormat !== 'DSV') delete body.columnSeparator;
      delete body.useIndexJoin;
      delete body.sourceData;
      delete body.warehouseSize;
      delete body.encryptionKey;
      const s = (await call('POST', '/query/saved', { body })).data;
      setSaved(`Saved as “${s.name}”.`);
    } catch (err) {
      setSubmitError(err);
    }
  };
  const insert = (name) => {
    const v = editor.current;
    if (!v) return;
    v.dispatch(v.state.replaceSelection(name));
    v.focus();
  };

  return html`<div class=${showSchema ? 'split' : ''}>
    <section aria-labelledby="dq-title">
      <h1 id="dq-title">Create a data query</h1>
      <${ErrorBox} error=${schemaError} />
      <p class="muted">Read-only SQL over your tenant's audit tables. <kbd>Ctrl</kbd>+<kbd>Enter</kbd> runs it; <kbd>Ctrl</kbd>+<kbd>Space</kbd> completes table and column names; <kbd>Esc</kbd> then <kbd>Tab</kbd> leaves the editor.</p>
      ${tables && html`<${SqlEditor} initial=${initial} onRun=${run} tables=${tables} editorRef=${editor} />`}
      <fieldset class="options">
        <legend>Options</legend>
        <label>Output format
          <select name="outputFormat" value=${options.outputFormat} onChange=${set('outputFormat')}>
            <option value="CSV">CSV</option><option value="TSV">TSV</option>
            <option value="DSV">DSV (custom separator)</option><option value="JSON">JSON (JSON Lines)</option>
          </select>
        </label>
        <label>Column separator
          <input name="columnSeparator" maxLength="1" size="3" value=${options.columnSeparator}
            disabled=${options.outputFormat !== 'DSV'} onInput=${set('columnSeparator')} />
        </label>
        <label>Compression
          <select name="compression" value=${options.compression} onChange=${set('compression')}>
            <option value="NONE">None</option><option value="GZIP">GZIP</option><option value="ZIP">ZIP</option>
          </select>
        </label>
        <label>Source
          <select name="sourceData" value=${options.sourceData} onChange=${set('sourceData')}>
            <option value="LIVE">Live</option><option value="WAREHOUSE">Warehouse</option>
          </select>
        </label>
        <label>Warehouse size
          <select name="warehouseSize" value=${options.warehouseSize} onChange=${set('warehouseSize')}>
            <option value="">Default</option><option value="xsmall">xsmall</option>
          </select>
        </label>
        <label class="check"><input type="checkbox" name="readDeleted" checked=${options.readDeleted} onChange=${set('readDeleted')} /> Read deleted records only</label>
        <label class="check"><input type="checkbox" name="useIndexJoin" checked=${options.useIndexJoin} onChange=${set('useIndexJoin')} /> Use index join</label>
        <details>
          <summary>Encrypt the result</summary>
          <label>RSA public key (base64)
            <textarea name="encryptionKey" rows="3" value=${options.encryptionKey} onInput=${set('encryptionKey')}></textarea>
          </label>
        </details>
      </fieldset>
      <div class="row">
        <button type="button" class="primary" onClick=${run} disabled=${running} data-run>Run</button>
        <button type="button" onClick=${() => setShowSchema(!showSchema)} aria-pressed=${showSchema}>${showSchema ? 'Hide schema' : 'Show schema'}</button>
        ${job && !queryDone(job.queryStatus) && html`<button type="button" onClick=${async () => {
          try { setJob((await call('DELETE', `/query/jobs/${encodeURIComponent(job.id)}`)).data); } catch (e) { setJobError(e); }
        }}>Cancel query</button>`}
      </div>
      <form class="row" onSubmit=${save} aria-label="Save this query">
        <label class="grow">Save as
          <input name="saveName" required maxLength="100" value=${saveName} onInput=${(e) => setSaveName(e.target.value)} placeholder="a name for this query" />
        </label>
        <button type="submit">Save query</button>
      </form>
      ${saved && html`<p class="ok" role="status">${saved}</p>`}
      <${ErrorBox} error=${submitError} />
      ${(job || jobError) && html`<${JobStatus} job=${job} error=${jobError} />`}
    </section>
    ${showSchema && html`<aside><${SchemaBrowser} onPick=${insert} /></aside>`}
  </div>`;
}
