// Schedules: the tenant's schedules by id (next runs in words), and one schedule's page with its
// next instants, its latest runs and its outcome, and pause / resume / trigger / backfill / delete
// for operators.
import { useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { may } from "../session.js";
import { ErrorBox, Loading, Pager, State, Time, ZonedTime, kTerminal, taskOf, usePages } from "../util.js";

const kMisfire = { FIRE_ONCE: "after downtime, one run for all missed instants", MISFIRE_POLICY_UNSPECIFIED: "after downtime, one run for all missed instants", FIRE_ALL: "after downtime, a run for each missed instant", SKIP: "after downtime, missed instants are skipped" };
const kOverlap = { ALLOW: "runs may overlap", OVERLAP_POLICY_UNSPECIFIED: "runs may overlap", FORBID: "a run is skipped while the previous one runs", REPLACE: "a run cancels the previous one if it still runs" };
const kPageSize = 50;

export function Schedules() {
  const pages = usePages();
  const token = pages.token;
  const list = usePolled(() => call("/v1/schedules", { query: { page_size: kPageSize, page_token: token } }), 10000, [token]);
  if (list.loading) return html`<${Loading} />`;
  const schedules = (list.data && list.data.schedules) || [];
  return html`<section>
    <h1>Schedules</h1>
    <${ErrorBox} error=${list.error} />
    ${schedules.length === 0 ? html`<p class="muted empty">No schedules yet. <a href="#/new">Create one</a> (choose "On a schedule").</p>` : html`
    <div class="table-wrap"><table>
      <thead><tr><th>Schedule</th><th>Expression</th><th>Next run</th><th>Last run</th><th>Does</th><th>Missed runs</th><th>Overlap</th><th></th></tr></thead>
      <tbody>${schedules.map((schedule) => {
        const runs = (list.data.runs || {})[schedule.id] || {};
        return html`<tr key=${schedule.id}>
        <td><a href=${"#/schedules/" + encodeURIComponent(schedule.id)}>${schedule.id}</a></td>
        <td><code>${schedule.expression}</code></td>
        <td>${runs.next ? html`<${ZonedTime} ms=${Date.parse(runs.next)} zone=${schedule.time_zone || "UTC"} />` : html`<span class="muted">${schedule.paused ? "paused" : "none"}</span>`}</td>
        <td>${runs.last ? html`<a href=${"#/jobs/" + encodeURIComponent(runs.last.id)}><${State} state=${runs.last.state} /></a> <${Time} ms=${Date.parse(runs.last.due)} />` : html`<span class="muted">none yet</span>`}</td>
        <td class="task">${taskOf(schedule.job_template)}</td>
        <td>${kMisfire[schedule.misfire || "FIRE_ONCE"]}</td>
        <td>${kOverlap[schedule.overlap || "ALLOW"]}</td>
        <td>${schedule.paused && html`<span class="state state-paused">paused</span>`}</td>
      </tr>`;
      })}</tbody>
    </table></div>`}
    <${Pager} pages=${pages} next=${list.data && list.data.next_page_token} labels=${["← First", "Next →"]} />
  </section>`;
}

export function SchedulePage({ id, session }) {
  const path = `/v1/schedules/${encodeURIComponent(id)}`;
  const schedule = usePolled(() => call(path), 10000, [id]);
  const next = usePolled(() => call(`${path}/next`, { query: { count: 5 } }), 30000, [id]);
  const runs = usePolled(() => call("/v1/jobs", { query: { schedule: id, page_size: 10 } }), 5000, [id]);
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  const [done, setDone] = useState("");
  const act = async (name, method, suffix, body) => {
    setBusy(name);
    setError(null);
    setDone("");
    try {
      const answer = await call(path + suffix, { method, body });
      setDone(name === "trigger" ? `Triggered run ${answer.id}.` : name === "backfill" ? `Backfill: ${answer.runs} runs.` : `${name}: done.`);
      if (name === "delete") window.location.hash = "#/schedules";
      schedule.refresh();
      next.refresh();
      runs.refresh();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy("");
    }
  };
  if (schedule.loading) return html`<${Loading} />`;
  if (!schedule.data) return html`<section><h1>Schedule ${id}</h1><${ErrorBox} error=${schedule.error} /><p><a href="#/schedules">All schedules</a></p></section>`;
  const s = schedule.data;
  const manage = may(session, "manage-schedules");
  const backfill = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    act("backfill", "POST", ":backfill", { from: new Date(String(form.get("from"))).toISOString(), to: new Date(String(form.get("to"))).toISOString() });
  };
  // The last run that ended, and its outcome (else the newest run, still under way).
  const listed = (runs.data && runs.data.jobs) || [];
  const latest = listed.find((job) => kTerminal.has(job.state)) || listed[0];
  return html`<section>
    <p><a href="#/schedules">← Schedules</a></p>
    <h1>${s.id} ${s.paused && html`<span class="state state-paused">paused</span>`}</h1>
    <dl class="facts">
      <dt>Expression</dt><dd><code>${s.expression}</code> ${next.data && html`<span data-testid="explain">— ${next.data.explain}</span>`}</dd>
      <dt>Time zone</dt><dd>${s.time_zone || "UTC"}</dd>
      <dt>Does</dt><dd>${taskOf(s.job_template)}</dd>
      <dt>Missed runs</dt><dd>${kMisfire[s.misfire || "FIRE_ONCE"]}</dd>
      <dt>Overlap</dt><dd>${kOverlap[s.overlap || "ALLOW"]}</dd>
      <dt>Last run</dt><dd>${latest ? html`<a href=${"#/jobs/" + encodeURIComponent(latest.id)}>${latest.id}</a> <${State} state=${latest.state} />` : html`<span class="muted">none yet</span>`}</dd>
    </dl>
    ${manage ? html`<div class="actions">
      ${s.paused ? html`<button disabled=${!!busy} onClick=${() => act("resume", "POST", ":resume")}>Resume</button>` : html`<button disabled=${!!busy} onClick=${() => act("pause", "POST", ":pause")}>Pause</button>`}
      <button disabled=${!!busy} onClick=${() => act("trigger", "POST", ":trigger")}>Run now</button>
      <button class="danger" disabled=${!!busy} onClick=${() => window.confirm(`Delete schedule ${s.id}? Its runs stay.`) && act("delete", "DELETE", "")}>Delete</button>
    </div>
    <form class="inline" onSubmit=${backfill}>
      <label>Backfill from <input type="datetime-local" name="from" required /></label>
      <label>to <input type="datetime-local" name="to" required /></label>
      <button type="submit" disabled=${!!busy}>Backfill</button>
    </form>` : html`<p class="muted actions-none">Your role (${session.role}) cannot change schedules.</p>`}
    ${done && html`<p class="notice" role="status">${done}</p>`}
    <${ErrorBox} error=${error} />
    <h2>Next runs</h2>
    <${ErrorBox} error=${next.error} />
    ${next.data && html`<ol class="instants" data-testid="next-runs">${(next.data.next || []).map((instant) => html`<li><${ZonedTime} ms=${Date.parse(instant)} zone=${next.data.time_zone} /></li>`)}</ol>`}
    <h2>Latest runs</h2>
    ${runs.data && runs.data.jobs && runs.data.jobs.length ? html`<table class="compact"><tbody>${runs.data.jobs.map((job) => html`<tr key=${job.id}><td><a href=${"#/jobs/" + encodeURIComponent(job.id)}>${job.id}</a></td><td><${State} state=${job.state} /></td><td><${Time} ms=${job.due_ms} /></td></tr>`)}</tbody></table>
      <p><a href=${"#/jobs?schedule=" + encodeURIComponent(id)}>All runs</a></p>` : html`<p class="muted">No runs yet.</p>`}
  </section>`;
}
