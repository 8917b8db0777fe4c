// The API client: same origin, the bearer token from sessionStorage, and
// readers that accept both the reference (Zuora) shapes and older ones.

const TOKEN_KEY = 'auditx.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/// The token's claims (tenant, scopes, expiry), read without verifying
/// (the server verifies every call).
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// The reasons of an error body: `{success:false, reasons:[{code,message}]}`,
/// `{code, message}` or `{message}`.
export function errorOf(status, body) {
  if (body && Array.isArray(body.reasons) && body.reasons.length) {
    const r = body.reasons[0];
    return new ApiError(status, r.code || String(status), r.message || 'request failed');
  }
  if (body && (body.message || body.code)) {
    return new ApiError(status, body.code || String(status), body.message || body.code);
  }
  return new ApiError(status, String(status), `HTTP ${status}`);
}

function queryString(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => v !== '' && q.append(name, v));
    else q.append(name, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

/// Calls the API; resolves with the whole JSON body, throws an ApiError.
export async function call(method, path, { query, body, auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth) headers.Authorization = `Bearer ${session.token()}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path + queryString(query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `the server did not answer (${e.message})`);
  }
  let json = null;
  const text = await response.text();
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok || (json && json.success === false)) {
    const error = errorOf(response.status, json);
    if (response.status === 401 && auth) onUnauthorized(error);
    throw error;
  }
  return json ?? {};
}

/// The items of a list answer: `data` as an array, or `data.jobs`.
export function items(body) {
  const data = body?.data;
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.jobs)) return data.jobs;
  if (data && Array.isArray(data.data)) return data.data;
  return [];
}

/// The groups of a summary answer as `{dims, output, errors}`, from the
/// reference shape (`output: [{dimensions, output, totalErrorCount}]`) or
/// `{total, groups: [{..fields, count}]}`.
export function summaryGroups(body, groupBy, exportType) {
  const data = body?.data || {};
  if (Array.isArray(data.output)) {
    return data.output.map((g) => ({
      dims: g.dimensions || {},
      output: Number(g.output || 0),
      errors: Number(g.totalErrorCount || 0),
    }));
  }
  if (Array.isArray(data.groups)) {
    return data.groups.map((g) => {
      const dims = {};
      for (const f of groupBy) dims[f] = g[f] ?? null;
      const n = Number(g.count || 0);
      return exportType === 'ERROR' ? { dims, output: 0, errors: n } : { dims, output: n, errors: 0 };
    });
  }
  return [];
}

/// Opens a download (a presigned URL, another origin) in the browser.
export function download(url) {
  const a = document.createElement('a');
  a.href = url;
  a.rel = 'noopener';
  a.target = '_blank';
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/// What this server's API takes, read from its OpenAPI document (shapes
/// differ between versions: the summary's exportType, the entries'
/// sessionId vs sessionIds, the data query's `output` object).
let capabilitiesPromise = null;
export function capabilities() {
  if (!capabilitiesPromise) {
    capabilitiesPromise = fetch('/openapi.json', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : {}))
      .catch(() => ({}))
      .then((doc) => {
        const resolve = (schema) => {
          const ref = schema?.$ref;
          return ref ? doc.components?.schemas?.[ref.split('/').pop()] || {} : schema || {};
        };
        const bodyOf = (path, method) =>
          resolve(doc.paths?.[path]?.[method]?.requestBody?.content?.['application/json']?.schema);
        const summary = bodyOf('/meters/{meterId}/summary', 'post');
        const submit = bodyOf('/query/jobs', 'post');
        const entryParams = (doc.paths?.['/meters/{meterId}/auditTrail/entries']?.get?.parameters || [])
          .map((p) => resolve(p).name || p.name);
        return {
          summaryNeedsExportType: (summary.required || []).includes('exportType'),
          entriesSingularFilters: entryParams.includes('sessionId') || !entryParams.includes('sessionIds'),
          submitNeedsOutput: (submit.required || []).includes('output'),
        };
      });
  }
  return capabilitiesPromise;
}
