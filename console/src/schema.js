// The tenant's tables, loaded once per sign-in; the schema browser.
import { useEffect, useState } from 'preact/hooks';
import { call, items } from './api.js';
import { html, ErrorBox } from './ui.js';

let cached = null;
export async function loadSchema() {
  if (!cached) {
    cached = call('GET', '/query/schema').then((body) => items(body)).catch((e) => {
      cached = null;
      throw e;
    });
  }
  return cached;
}
export function forgetSchema() {
  cached = null;
}

export function useSchema() {
  const [tables, setTables] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    loadSchema().then(setTables, setError);
  }, []);
  return [tables, error];
}

export function SchemaBrowser({ onPick }) {
  const [tables, error] = useSchema();
  const [search, setSearch] = useState('');
  const [descending, setDescending] = useState(false);
  const [open, setOpen] = useState({});
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!tables) return html`<p aria-busy="true">Loading the schema…</p>`;
  const term = search.trim().toLowerCase();
  const shown = tables
    .filter((t) => !term || t.name.toLowerCase().includes(term) || t.columns.some((c) => c.name.toLowerCase().includes(term)))
    .sort((a, b) => (descending ? b.name.localeCompare(a.name) : a.name.localeCompare(b.name)));
  const all = shown.every((t) => open[t.name]);
  const toggleAll = () => {
    const next = {};
    shown.forEach((t) => (next[t.name] = !all));
    setOpen(next);
  };
  return html`<section class="schema" aria-label="Schema browser">
    <div class="row">
      <label class="grow">Search tables and columns
        <input type="search" value=${search} onInput=${(e) => setSearch(e.target.value)} placeholder="e.g. login" />
      </label>
      <label>Sort
        <select value=${descending ? 'desc' : 'asc'} onChange=${(e) => setDescending(e.target.value === 'desc')}>
          <option value="asc">Sort A to Z</option>
          <option value="desc">Sort Z to A</option>
        </select>
      </label>
      <button type="button" onClick=${toggleAll}>${all ? 'Collapse all' : 'Expand all'}</button>
    </div>
    <p class="muted" aria-live="polite">${shown.length} of ${tables.length} tables</p>
    <ul class="tables">
      ${shown.map((t) => html`<li key=${t.name} data-table=${t.name}>
        <button type="button" class="table-toggle" aria-expanded=${!!open[t.name]}
          onClick=${() => setOpen({ ...open, [t.name]: !open[t.name] })}>
          <span aria-hidden="true">${open[t.name] ? '▾' : '▸'}</span> ${t.name}
          <span class="muted">(${t.columns.length} columns)</span>
        </button>
        ${onPick && html`<button type="button" class="link" onClick=${() => onPick(t.name)} aria-label=${`Insert ${t.name}`}>insert</button>`}
        ${open[t.name] && html`<table class="columns"><thead><tr><th>Field</th><th>Type</th></tr></thead><tbody>
          ${t.columns.map((c) => html`<tr key=${c.name} class=${term && c.name.toLowerCase().includes(term) ? 'hit' : ''}><td>${c.name}</td><td>${c.type}</td></tr>`)}
        </tbody></table>`}
      </li>`)}
    </ul>
  </section>`;
}
