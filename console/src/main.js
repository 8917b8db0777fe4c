// The auditx console: sign-in, navigation, pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, claims, session, setUnauthorizedHandler } from './api.js';
import { forgetSchema } from './schema.js';
import { html, ErrorBox } from './ui.js';
import { QueryPage } from './pages/query.js';
import { SavedPage } from './pages/saved.js';
import { HistoryPage } from './pages/history.js';
import { SchemaBrowser } from './schema.js';
import { DownloadsPage } from './pages/downloads.js';
import { AuditPage } from './pages/audit.js';
import { FleetPage } from './pages/fleet.js';

// id, title, page, the scope the page needs to be listed (the server
// checks every call whatever the menu shows).
const PAGES = [
  ['query', 'Data Query', QueryPage],
  ['saved', 'Saved queries', SavedPage],
  ['history', 'Query history', HistoryPage],
  ['schema', 'Schema', () => html`<section><h1>Schema browser</h1><${SchemaBrowser} /></section>`],
  ['downloads', 'Download Center', DownloadsPage],
  ['audit', 'Audit trail', AuditPage],
  ['fleet', 'Fleet', FleetPage, 'ops:read'],
];

/// Whether the token's claims list `scope` (in `scope` or `scopes`).
function holds(c, scope) {
  const names = String(c.scope || '').split(/\s+/).concat(Array.isArray(c.scopes) ? c.scopes : []);
  return names.includes(scope);
}

function route() {
  const m = location.hash.match(/^#\/(\w+)/);
  return m && PAGES.some(([id]) => id === m[1]) ? m[1] : 'query';
}

function SignIn({ onSignedIn, error: initial }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(initial);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    session.set(token.trim());
    try {
      await call('GET', '/query/schema');
      onSignedIn();
    } catch (err) {
      session.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to auditx</h1>
      <p class="muted">Paste a bearer token (<code>auditx token --tenant T</code> mints one). It is kept in this tab only.</p>
      <label>Bearer token<textarea name="token" rows="5" required value=${token} onInput=${(e) => setToken(e.target.value)} autoFocus></textarea></label>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <${ErrorBox} error=${error} />
    </form>
  </main>`;
}

function App({ initialError }) {
  const [signedIn, setSignedIn] = useState(!!session.token());
  const [page, setPage] = useState(route());
  const [signInError, setSignInError] = useState(initialError || null);
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    const onHash = () => (setPage(route()), setMenu(false));
    window.addEventListener('hashchange', onHash);
    setUnauthorizedHandler((e) => {
      session.clear();
      forgetSchema();
      setSignInError(e);
      setSignedIn(false);
    });
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    const title = PAGES.find(([id]) => id === page)?.[1];
    document.title = `${title} · auditx console`;
    document.getElementById('main')?.focus();
  }, [page, signedIn]);
  if (!signedIn) return html`<${SignIn} error=${signInError} onSignedIn=${() => (setSignInError(null), setSignedIn(true))} />`;
  const c = claims(session.token()) || {};
  const Page = PAGES.find(([id]) => id === page)[2];
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/query">auditx</a>
      <button type="button" class="menu" aria-expanded=${menu} aria-controls="nav" onClick=${() => setMenu(!menu)}>Menu</button>
      <nav id="nav" class=${menu ? 'open' : ''} aria-label="Console">
        ${PAGES.filter(([, , , scope]) => !scope || holds(c, scope)).map(([id, title]) => html`<a href=${`#/${id}`} aria-current=${id === page ? 'page' : undefined}>${title}</a>`)}
      </nav>
      <span class="who" title="tenant">tenant <strong data-tenant>${c.tenant || '?'}</strong></span>
      <button type="button" onClick=${() => { session.clear(); forgetSchema(); setSignedIn(false); }}>Sign out</button>
    </header>
    <main id="main" tabIndex="-1"><${Page} key=${page} /></main>`;
}

/// A printed sign-in link carries `#signin=<one-time code>`: exchange it
/// for the token, then clean the address bar.
async function boot() {
  const m = location.hash.match(/^#signin=([\w-]+)/);
  let error = null;
  if (m) {
    history.replaceState(null, '', `${location.pathname}#/query`);
    try {
      const body = await call('POST', '/console/signin', { body: { code: m[1] }, auth: false });
      session.set(body.data.token);
    } catch (e) {
      error = e;
    }
  }
  const root = document.getElementById('app');
  root.textContent = '';
  render(html`<${App} initialError=${error} />`, root);
}

boot();
