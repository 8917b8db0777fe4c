// Small shared pieces: htm bound to Preact, formatting, the shared stores.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

export function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '—';
  const d = /^\d+$/.test(String(value)) ? new Date(Number(value)) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtNumber(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString('en-US');
}

/// An ISO time from a `datetime-local` value (taken as UTC).
export function isoFromLocal(value) {
  if (!value) return '';
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  const code = error.code && error.code !== String(error.status) ? `${error.code}: ` : '';
  return html`<p class="error" role="alert">${code}${error.message}</p>`;
}

export function StatusBadge({ status }) {
  const s = String(status || '').toLowerCase();
  return html`<span class=${`badge badge-${s}`}>${status}</span>`;
}

export function Pager({ previous, next, onPrevious, onNext, label }) {
  return html`<nav class="pager" aria-label=${label || 'pages'}>
    <button type="button" disabled=${!previous} onClick=${onPrevious}>← Previous</button>
    <button type="button" disabled=${!next} onClick=${onNext}>Next →</button>
  </nav>`;
}

/// What the Data Query page opens with next (set by Saved / History).
export const draft = { value: null };

/// Whether a data query status is final.
export const queryDone = (s) => ['completed', 'failed', 'cancelled', 'canceled'].includes(String(s).toLowerCase());
export const exportDone = (s) => ['FINISHED', 'FAILED', 'CANCELED', 'CANCELLED'].includes(String(s).toUpperCase());
