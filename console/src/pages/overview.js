// Overview: the tenant's jobs by state and queue, state changes per second, dead jobs waiting,
// live workers; refreshed every 2 s.
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { ErrorBox, Loading, State, kStates } from "../util.js";

const rate = (rates, ...states) => states.reduce((sum, state) => sum + (rates[state] || 0), 0);

// p50 / p99 of a lag over the last minute, or a dash when no job started or fired in it.
function LagCard({ label, lag, note }) {
  const value = lag && lag.count ? html`${lag.p50_ms} <small>/ ${lag.p99_ms} ms</small>` : "–";
  return html`<div class="card" title=${lag && lag.count ? `${lag.count} jobs in the last minute; the slowest ${lag.max_ms} ms` : "no job in the last minute"}>
    <div class="label">${label} p50 / p99</div><div class="value">${value}</div><div class="muted">${note}</div>
  </div>`;
}

export function Overview({ session }) {
  const stats = usePolled(() => call("/v1/stats"), 2000);
  const workers = usePolled(() => call("/v1/workers"), 5000);
  if (stats.loading) return html`<${Loading} />`;
  const data = stats.data || { by_state: {}, by_queue: {}, rates: { per_second: {} }, jobs: 0, view: {} };
  const perSecond = data.rates.per_second || {};
  const live = workers.data ? (workers.data.workers || []).filter((w) => w.alive && !w.role).length : null;
  const states = ["SUBMITTED", ...kStates].filter((state) => data.by_state[state]);
  const queues = Object.entries(data.by_queue).sort((a, b) => b[1] - a[1]);
  return html`<section>
    <h1>Overview <small class="muted">tenant ${session.tenant}</small></h1>
    <${ErrorBox} error=${stats.error} />
    <div class="cards">
      <div class="card"><div class="label">jobs</div><div class="value" data-testid="jobs-total">${data.jobs}</div></div>
      <div class="card"><div class="label">submitted / s</div><div class="value">${Math.max(perSecond.SUBMITTED || 0, perSecond.PENDING || 0).toFixed(1)}</div><div class="muted">last ${data.rates.window_s || 60} s</div></div>
      <div class="card"><div class="label">completed / s</div><div class="value">${rate(perSecond, "SUCCEEDED", "DEAD", "CANCELLED", "SKIPPED").toFixed(1)}</div><div class="muted">succeeded, dead, cancelled, skipped</div></div>
      <div class="card"><div class="label">started / s</div><div class="value">${rate(perSecond, "RUNNING").toFixed(1)}</div></div>
      <${LagCard} label="start lag" lag=${data.lag && data.lag.start} note="worker start − due" />
      <${LagCard} label="fire lag" lag=${data.lag && data.lag.fire} note="committed to run − due (negative: fired ahead)" />
      <a class="card" href="#/dead-letters"><div class="label">dead, waiting for a replay</div><div class="value" data-testid="dead-total">${data.by_state.DEAD || 0}</div></a>
      <a class="card" href="#/workers"><div class="label">workers live</div><div class="value">${live === null ? "…" : live}</div></a>
    </div>
    ${data.view && data.view.caught_up === false && html`<p class="warning">The API's view is still reading the topics (${data.view.lag_records} records behind): counts are not complete yet.</p>`}
    <div class="columns">
      <div>
        <h2>By state</h2>
        ${states.length === 0 ? html`<p class="muted">No jobs yet. <a href="#/new">Create one</a>.</p>` : html`<table class="compact"><tbody>
          ${states.map((state) => html`<tr><td><a href=${"#/jobs?state=" + state}><${State} state=${state} /></a></td><td class="number">${data.by_state[state]}</td><td class="number muted">${perSecond[state] ? perSecond[state].toFixed(1) + " /s" : ""}</td></tr>`)}
        </tbody></table>`}
      </div>
      <div>
        <h2>By queue</h2>
        ${queues.length === 0 ? html`<p class="muted">No queues yet.</p>` : html`<table class="compact"><tbody>
          ${queues.map(([queue, count]) => html`<tr><td><a href=${"#/jobs?queue=" + encodeURIComponent(queue || "default")}>${queue || "default"}</a></td><td class="number">${count}</td></tr>`)}
        </tbody></table>`}
      </div>
    </div>
  </section>`;
}
