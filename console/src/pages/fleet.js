// Fleet: the workers alive and the fleet's throughput of the last hour
// (GET /fleet/workers, /fleet/throughput; scope ops:read), and what the
// scheduler's /metrics shows (jobs by status, task queues and dead letters,
// per-tenant queues, this process's workers).
import { useEffect, useRef, useState } from 'preact/hooks';
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';
import { call, items } from '../api.js';
import { html, ErrorBox, fmtNumber, fmtTime } from '../ui.js';

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);

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

function sum(metrics, name, filter = () => true) {
  return metrics.filter((m) => m.name === name && filter(m.labels)).reduce((n, m) => n + m.value, 0);
}

const THROUGHPUT_EVERY_MS = 5000;

/// The fleet's last hour per minute (GET /fleet/throughput: every worker's
/// counts, kept in the state store), as a chart refreshed every 5 s.
function Throughput() {
  const canvas = useRef(null);
  const chart = useRef(null);
  const [minutes, setMinutes] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    chart.current = new Chart(canvas.current, {
      type: 'bar',
      data: { labels: [], datasets: [
        { type: 'bar', label: 'rows rendered / min', data: [], backgroundColor: '#1f4e79', yAxisID: 'yRows', order: 2 },
        { type: 'line', label: 'tasks finished / min', data: [], borderColor: '#2e7d32', backgroundColor: '#2e7d32', pointRadius: 0, yAxisID: 'yTasks', order: 1 },
        { type: 'line', label: 'data queries / min', data: [], borderColor: '#b26a00', backgroundColor: '#b26a00', pointRadius: 0, yAxisID: 'yTasks', order: 0 },
      ] },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: 'index', intersect: false },
        scales: {
          yRows: { type: 'linear', axis: 'y', position: 'left', beginAtZero: true, title: { display: true, text: 'rows' } },
          yTasks: { type: 'linear', axis: 'y', position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'tasks, queries' } },
        },
      },
    });
    return () => chart.current.destroy();
  }, []);
  useEffect(() => {
    let stop = false;
    const load = () => call('GET', '/fleet/throughput').then(
      (b) => !stop && (setMinutes(Array.isArray(b.data) ? b.data : []), setError(null)),
      (e) => !stop && setError(e));
    load();
    const t = setInterval(load, THROUGHPUT_EVERY_MS);
    return () => ((stop = true), clearInterval(t));
  }, []);
  useEffect(() => {
    if (!minutes) return;
    const c = chart.current;
    c.data.labels = minutes.map((m) => String(m.minute).slice(11, 16));
    c.data.datasets[0].data = minutes.map((m) => m.rows);
    c.data.datasets[1].data = minutes.map((m) => m.tasks);
    c.data.datasets[2].data = minutes.map((m) => m.queries);
    c.update();
  }, [minutes]);
  const total = (key) => (minutes || []).reduce((n, m) => n + m[key], 0);
  const summary = minutes
    ? `Last hour (UTC minutes): ${fmtNumber(total('rows'))} rows rendered, ${fmtNumber(total('tasks'))} tasks finished, ${fmtNumber(total('queries'))} data queries completed`
    : 'Reading the last hour…';
  return html`<div class="card throughput"><h2>Throughput, last hour</h2>
    <${ErrorBox} error=${error} />
    <p class="muted" aria-live="polite" data-throughput-rows=${minutes ? total('rows') : undefined}
      data-throughput-tasks=${minutes ? total('tasks') : undefined} data-throughput-queries=${minutes ? total('queries') : undefined}>${summary}; every worker of the fleet, per minute.</p>
    <div class="chart"><canvas ref=${canvas} data-throughput-chart role="img" aria-label=${summary}></canvas></div>
  </div>`;
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
    <${Throughput} />
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
  </section>`;
}
