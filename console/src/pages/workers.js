// Workers: every worker's latest heartbeat, live / stopped / lost, its slots, running jobs (the
// tenant's own), CPU and memory.
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { ErrorBox, Loading, Time, since } from "../util.js";

const status = (worker) => (worker.stopped ? "stopped" : worker.alive ? "live" : "lost");
const mib = (bytes) => (bytes ? `${(Number(bytes) / 1048576).toFixed(0)} MiB` : "–");

export function Workers() {
  const list = usePolled(() => call("/v1/workers"), 3000);
  if (list.loading) return html`<${Loading} />`;
  const workers = ((list.data && list.data.workers) || []).filter((worker) => !worker.role);
  return html`<section>
    <h1>Workers</h1>
    <${ErrorBox} error=${list.error} />
    ${workers.length === 0 ? html`<p class="muted empty">No worker has sent a heartbeat yet.</p>` : html`
    <div class="table-wrap"><table>
      <thead><tr><th>Worker</th><th>Status</th><th>Queues</th><th>Slots</th><th>Running (yours)</th><th>CPU</th><th>Memory</th><th>Last heartbeat</th><th>Up since</th></tr></thead>
      <tbody>${workers.map((worker) => html`<tr key=${worker.worker_id}>
        <td>${worker.worker_id}</td>
        <td><span class=${"state state-" + status(worker)}>${status(worker)}</span></td>
        <td>${(worker.queues || []).join(", ")}</td>
        <td class="number">${worker.slots || 0}</td>
        <td>${(worker.running || []).slice(0, 10).map((id) => html`<a href=${"#/jobs/" + encodeURIComponent(id)}>${id}</a> `)}${(worker.running || []).length > 10 ? ` +${worker.running.length - 10}` : ""}</td>
        <td class="number">${worker.cpu_seconds ? Number(worker.cpu_seconds).toFixed(1) + " s" : "–"}</td>
        <td class="number">${mib(worker.rss_bytes)}</td>
        <td><${Time} ms=${worker.at_ms} /> <span class="muted">${since(worker.at_ms)}</span></td>
        <td><${Time} ms=${worker.started_ms} /></td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}
