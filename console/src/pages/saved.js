// Saved queries: list, open, run, rename, delete (server-side, per tenant).
import { useEffect, useState } from 'preact/hooks';
import { call, items } from '../api.js';
import { html, ErrorBox, draft, fmtTime } from '../ui.js';
import { DEFAULT_OPTIONS, submitQuery } from './query.js';

function optionsOf(saved) {
  return {
    ...DEFAULT_OPTIONS,
    outputFormat: saved.outputFormat || 'CSV',
    compression: saved.compression || 'NONE',
    columnSeparator: saved.columnSeparator || DEFAULT_OPTIONS.columnSeparator,
    readDeleted: !!saved.readDeleted,
  };
}

export function SavedPage() {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [renaming, setRenaming] = useState(null);
  const [newName, setNewName] = useState('');
  const [notice, setNotice] = useState(null);
  const load = async () => {
    try {
      setList(items(await call('GET', '/query/saved')));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
  }, []);
  const act = (f) => async (...args) => {
    setError(null);
    setNotice(null);
    try {
      await f(...args);
    } catch (e) {
      setError(e);
    }
  };
  const open = (s, job) => {
    draft.value = { query: s.query, options: optionsOf(s), name: s.name, job };
    location.hash = '#/query';
  };
  const run = act(async (s) => open(s, await submitQuery(s.query, optionsOf(s))));
  const rename = act(async (s) => {
    await call('PATCH', `/query/saved/${encodeURIComponent(s.id)}`, { body: { name: newName } });
    setRenaming(null);
    setNotice(`Renamed to “${newName.trim()}”.`);
    await load();
  });
  const remove = act(async (s) => {
    if (!confirm(`Delete the saved query “${s.name}”?`)) return;
    await call('DELETE', `/query/saved/${encodeURIComponent(s.id)}`);
    setNotice(`Deleted “${s.name}”.`);
    await load();
  });
  return html`<section aria-labelledby="saved-title">
    <h1 id="saved-title">Saved queries</h1>
    <p class="muted">Queries saved for your tenant: open one in the editor, run it, rename or delete it. Save new ones from <a href="#/query">Data Query</a>.</p>
    ${notice && html`<p class="ok" role="status">${notice}</p>`}
    <${ErrorBox} error=${error} />
    ${list === null ? html`<p aria-busy="true">Loading…</p>` : list.length === 0 ? html`<p>No saved queries yet.</p>` : html`
    <div class="scroll"><table class="list" aria-label="Saved queries">
      <thead><tr><th>Name</th><th>SQL</th><th>Format</th><th>Updated</th><th>Actions</th></tr></thead>
      <tbody>${list.map((s) => html`<tr key=${s.id} data-saved=${s.name}>
        <td>${renaming === s.id ? html`<form class="inline" onSubmit=${(e) => { e.preventDefault(); rename(s); }}>
            <label class="sr-only" for=${`rename-${s.id}`}>New name</label>
            <input id=${`rename-${s.id}`} value=${newName} required maxLength="100" onInput=${(e) => setNewName(e.target.value)} autoFocus />
            <button type="submit">OK</button><button type="button" onClick=${() => setRenaming(null)}>Cancel</button>
          </form>` : html`<strong>${s.name}</strong>`}</td>
        <td><code class="sql">${s.query.length > 120 ? `${s.query.slice(0, 120)}…` : s.query}</code></td>
        <td>${s.outputFormat}${s.compression !== 'NONE' ? ` · ${s.compression}` : ''}</td>
        <td>${fmtTime(s.updatedOn)}</td>
        <td class="actions">
          <button type="button" onClick=${() => open(s)}>Open</button>
          <button type="button" class="primary" onClick=${() => run(s)}>Run</button>
          <button type="button" onClick=${() => { setRenaming(s.id); setNewName(s.name); }}>Rename</button>
          <button type="button" class="danger" onClick=${() => remove(s)}>Delete</button>
        </td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}
