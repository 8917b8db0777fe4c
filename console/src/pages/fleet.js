// Fleet: what the scheduler's /metrics shows (jobs by status, task queues
// and dead letters, per-tenant queues, workers' tasks in flight) and the
// throughput sampled while the page is open.
import { useEffect, useRef, useState } from 'preact/hooks';
import { CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';
import { call, items } from '../api.js';
import { html, ErrorBox, fmtNumber, fmtTime } from '../ui.js';

Chart.register(LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);

/// Prometheus text format → [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    (m[3] || '').replace(/(\w+)="((?:[^"\\]|\\.)*)"/g, (_, k, v) => (labels[k] = v));
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const HOUR_MS = 3600 * 1000;
const samples = [];

function sum(metrics, name, filter = () => true) {
  return metrics.filter((m) => m.name === name && filter(m.labels)).reduce((n, m) => n + m.value, 0);
}

function Throughput() {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = new Chart(canvas.current, {
      type: 'line',
      data: { labels: [], datasets: [
        { label: 'rows rendered / s', data: [], borderColor: '#1f4e79', pointRadius: 0 },
        { label: 'tasks finished / s', data: [], borderColor: '#2e7d32', pointRadius: 0 },
      ] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } },
    });
    return () => chart.current.destroy();
  }, []);
  useEffect(() => {
    const c = chart.current;
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].at - samples[i - 1].at) / 1000;
      rates.push({
        at: new Date(samples[i].at).toISOString().slice(11, 19),
        rows: Math.max(0, (samples[i].rows - samples[i - 1].rows) / dt),
        tasks: Math.max(0, (samples[i].tasks - samples[i - 1].tasks) / dt),
      });
    }
    c.data.labels = rates.map((r) => r.at);
    c.data.datasets[0].data = rates.map((r) => r.rows);
    c.data.datasets[1].data = rates.map((r) => r.tasks);
    c.update();
  });
  return html`<div class="chart"><canvas ref=${canvas} role="img" aria-label="Throughput over the last hour (sampled while this page is open)"></canvas></div>`;
}

function Workers() {
  const [workers, setWorkers] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stop = false;
    const load = () => call('GET', '/fleet/workers').then(
      (b) => !stop && (setWorkers(items(b)), setError(null)),
      (e) => !stop && setError(e));
    load();
    const t = setInterval(load, 2000);
    return () => ((stop = true), clearInterval(t));
  }, []);
  return html`<div class="card"><h2>Workers alive</h2>
    <${ErrorBox} error=${error} />
    ${workers && html`<p class="muted" aria-live="polite" data-workers-count=${workers.length}>${workers.length} worker${workers.length === 1 ? '' : 's'}, ${fmtNumber(workers.reduce((n, w) => n + w.inFlight, 0))} of ${fmtNumber(workers.reduce((n, w) => n + w.concurrency, 0))} task slots busy</p>
    <div class="scroll"><table class="list" aria-label="Workers alive"><thead><tr><th>Worker</th><th>Host</th><th>PID</th><th>In flight</th><th>Concurrency</th><th>Started</th><th>Last seen</th></tr></thead>
      <tbody>${workers.map((w) => html`<tr key=${w.id} data-worker=${w.id} data-pid=${w.pid}><td class="mono small">${w.id}</td><td>${w.host}</td><td>${w.pid}</td>
        <td>${w.inFlight}</td><td>${w.concurrency}</td><td class="small">${fmtTime(w.startedAt)}</td><td class="small">${fmtTime(w.seenAt)}</td></tr>`)}</tbody>
    </table></div>`}
  </div>`;
}

export function FleetPage() {
  const [metrics, setMetrics] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const r = await fetch('/metrics', { cache: 'no-store' });
        if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
        const m = parseMetrics(await r.text());
        const now = Date.now();
        samples.push({ at: now, rows: sum(m, 'auditx_worker_rows_rendered_total'), tasks: sum(m, 'auditx_worker_tasks_total') });
        while (samples.length && samples[0].at < now - HOUR_MS) samples.shift();
        if (!stop) (setMetrics(m), setError(null));
      } catch (e) {
        if (!stop) setError(e);
      }
    };
    load();
    const t = setInterval(load, 3000);
    return () => ((stop = true), clearInterval(t));
  }, []);
  if (!metrics) return html`<section><h1>Fleet</h1><${ErrorBox} error=${error} /><p aria-busy="true">Reading /metrics…</p></section>`;
  const jobs = metrics.filter((m) => m.name === 'auditx_scheduler_jobs');
  const queues = metrics.filter((m) => m.name === 'auditx_scheduler_queue_depth');
  const tenants = metrics.filter((m) => m.name === 'auditx_scheduler_tenant_queue_length' && m.value > 0);
  const inFlight = metrics.filter((m) => m.name === 'auditx_worker_tasks_in_flight');
  const dead = metrics.filter((m) => m.name === 'auditx_scheduler_dead_lettered_tasks_total');
  const tasks = metrics.filter((m) => m.name === 'auditx_worker_tasks_total' && m.value > 0);
  return html`<section aria-labelledby="fleet-title">
    <h1 id="fleet-title">Fleet</h1>
    <${Workers} />
    <p class="muted">Below: this API process's <code>/metrics</code>, every 3 s. Jobs and queues are the whole fleet's (counted from the state store and the broker);
      task counts are those of the workers in this process (standalone) — in a distributed deployment each worker serves its own <code>/metrics</code>.</p>
    <${ErrorBox} error=${error} />
    <div class="cards">
      <div class="card"><h2>Jobs not settled</h2><table class="list"><tbody>
        ${jobs.map((m) => html`<tr><td>${m.labels.kind}</td><td>${m.labels.status}</td><td data-metric=${`jobs-${m.labels.kind}-${m.labels.status}`}>${fmtNumber(m.value)}</td></tr>`)}
      </tbody></table></div>
      <div class="card"><h2>Task queues (ready)</h2><table class="list"><tbody>
        ${queues.map((m) => html`<tr><td>${m.labels.queue}</td><td>${fmtNumber(m.value)}</td></tr>`)}
        ${queues.length === 0 && html`<tr><td colspan="2">not sampled yet</td></tr>`}
      </tbody></table></div>
      <div class="card"><h2>Dead-lettered tasks</h2><table class="list"><tbody>
        ${dead.map((m) => html`<tr><td>${m.labels.kind}</td><td>${fmtNumber(m.value)}</td></tr>`)}
      </tbody></table></div>
      <div class="card"><h2>Workers (this process)</h2><table class="list"><tbody>
        <tr><td>tasks in flight</td><td>${inFlight.length ? fmtNumber(sum(inFlight, 'auditx_worker_tasks_in_flight')) : 'no worker in this process'}</td></tr>
        ${tasks.map((m) => html`<tr><td>${m.labels.kind} ${m.labels.outcome}</td><td>${fmtNumber(m.value)}</td></tr>`)}
      </tbody></table></div>
      <div class="card"><h2>Tenant queues</h2><table class="list"><tbody>
        ${tenants.map((m) => html`<tr><td>${m.labels.tenant}</td><td>${m.labels.kind}</td><td>${fmtNumber(m.value)}</td></tr>`)}
        ${tenants.length === 0 && html`<tr><td colspan="3">all empty</td></tr>`}
      </tbody></table></div>
    </div>
    <h2>Throughput</h2>
    <${Throughput} />
  </section>`;
}
