// One job: its state, its lifecycle as a timeline (each state, attempt, component, reason), the
// latest result and output, its definition, and the actions the signed-in role may take.
import { useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { useEvents, usePolled } from "../poll.js";
import { may } from "../session.js";
import { ErrorBox, Loading, State, Time, decodeBytes, kTerminal, since, taskOf } from "../util.js";

const kOutputShown = 4000;
const kAfterRunning = new Set(["SUCCEEDED", "FAILED", "RETRYING", "DEAD", "CANCELLED"]);

function Output({ text }) {
  const [all, setAll] = useState(false);
  if (!text) return html`<p class="muted">No output.</p>`;
  const long = text.length > kOutputShown;
  return html`<pre class="output">${all || !long ? text : text.slice(0, kOutputShown)}</pre>
    ${long && !all && html`<button class="link" onClick=${() => setAll(true)}>Show all ${text.length} characters</button>`}`;
}

// The states the view recorded, and the latest attempt's start on its worker from the result when
// no RUNNING was recorded for it (a worker reports the start in the result only).
function steps(view) {
  const history = [...(view.history || [])];
  const result = view.result;
  if (result && result.started_ms && !history.some((step) => step.state === "RUNNING" && (step.attempt || 0) === (result.attempt || 0))) {
    // Before the attempt's outcome (which may carry the same millisecond), a later attempt, or a
    // later instant, whichever comes first.
    const attempt = result.attempt || 0;
    const at = history.findIndex((step) => (step.attempt || 0) > attempt || ((step.attempt || 0) === attempt && kAfterRunning.has(step.state)) || Number(step.at_ms) > Number(result.started_ms));
    const running = { state: "RUNNING", attempt: result.attempt, at_ms: result.started_ms, component: result.worker_id, reason: "" };
    if (at < 0) history.push(running);
    else history.splice(at, 0, running);
  }
  return history;
}

function Timeline({ view }) {
  const history = steps(view);
  if (history.length === 0) return html`<p class="muted">No transitions recorded yet: the job was submitted and no dispatcher has decided on it.</p>`;
  return html`<ol class="timeline" data-testid="timeline">
    ${history.map((step, index) => html`<li key=${index} class=${"step-" + (step.state || "").toLowerCase()}>
      <${State} state=${step.state} />
      <span class="attempt">attempt ${(step.attempt || 0) + 1}</span>
      <${Time} ms=${step.at_ms} />
      ${step.component && html`<span class="muted">${step.state === "RUNNING" ? "on" : "by"} ${step.component}</span>`}
      ${step.reason && html`<div class="reason">${step.reason}</div>`}
    </li>`)}
  </ol>`;
}

// The definition as a user may send it back: without what kcron sets itself (the API refuses a
// body that names them).
function editable(job) {
  const copy = { ...(job || {}) };
  for (const field of ["id", "tenant", "submitted_by", "attempt", "history", "schedule_run"]) delete copy[field];
  return copy;
}

function Actions({ view, session, onDone }) {
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(false);
  const [definition, setDefinition] = useState("");
  const id = encodeURIComponent(view.id);
  const act = async (name, path, body, after) => {
    setBusy(name);
    setError(null);
    try {
      const answer = await call(path, { method: name === "update" ? "PUT" : "POST", body });
      if (after) after(answer);
      onDone();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy("");
    }
  };
  const manage = may(session, "manage-job", view);
  const terminal = kTerminal.has(view.state);
  const buttons = [];
  if (manage && !terminal) buttons.push(html`<button class="danger" disabled=${!!busy} onClick=${() => window.confirm(`Cancel job ${view.id}?`) && act("cancel", `/v1/jobs/${id}:cancel`, { reason: `cancelled in the console by ${session.subject}` })}>Cancel</button>`);
  if (manage && view.state === "DEAD") buttons.push(html`<button disabled=${!!busy} onClick=${() => act("replay", `/v1/jobs/${id}:replay`, {})}>Replay</button>`);
  if (manage && (view.state === "PENDING" || !view.state)) {
    buttons.push(html`<button disabled=${!!busy} onClick=${() => {
      setDefinition(JSON.stringify(editable(view.job), null, 2));
      setEditing(!editing);
    }}>Update…</button>`);
  }
  if (may(session, "clone")) buttons.push(html`<button disabled=${!!busy} onClick=${() => act("clone", `/v1/jobs/${id}:clone`, {}, (answer) => (window.location.hash = "#/jobs/" + encodeURIComponent(answer.id)))}>Clone</button>`);
  if (buttons.length === 0) return html`<p class="muted actions-none">Your role (${session.role}) cannot change this job.</p>`;
  return html`<div class="actions">${buttons}${busy && html`<span class="muted"> ${busy}…</span>`}</div>
    <${ErrorBox} error=${error} />
    ${editing && html`<form class="update" onSubmit=${(event) => {
      event.preventDefault();
      let job;
      try {
        job = JSON.parse(definition);
      } catch (failure) {
        setError({ message: `the definition is not JSON: ${failure.message}` });
        return;
      }
      act("update", `/v1/jobs/${id}`, job, () => setEditing(false));
    }}>
      <label for="definition">The job's definition (replaces it, until it fires)</label>
      <textarea id="definition" rows="12" spellcheck="false" value=${definition} onInput=${(e) => setDefinition(e.target.value)}></textarea>
      <button type="submit" disabled=${!!busy}>Save</button> <button type="button" class="link" onClick=${() => setEditing(false)}>discard</button>
    </form>`}`;
}

export function JobPage({ id, session }) {
  // Kept fresh by the tenant's events, and every 5 s as well: a change between the first load
  // and the events' first answer, or while the events are refused, is not missed.
  const job = usePolled(() => call(`/v1/jobs/${encodeURIComponent(id)}`), 5000, [id]);
  useEvents((events) => {
    if (events.some((event) => event.id === id)) job.refresh();
  }, [id]);
  if (job.loading) return html`<${Loading} />`;
  if (!job.data) return html`<section><h1>Job ${id}</h1><${ErrorBox} error=${job.error} /><p><a href="#/jobs">All jobs</a></p></section>`;
  const view = job.data;
  const result = view.result;
  return html`<section>
    <p><a href="#/jobs">← Jobs</a></p>
    <h1 class="job-title">${view.id} <${State} state=${view.state} /></h1>
    <${ErrorBox} error=${job.error} />
    <dl class="facts">
      <dt>Does</dt><dd>${taskOf(view.job) || html`<span class="muted">–</span>`}</dd>
      <dt>Queue</dt><dd>${view.queue || "default"}</dd>
      <dt>Attempt</dt><dd>${(view.attempt || 0) + 1}${view.job && view.job.retry && view.job.retry.max_retries ? ` of ${view.job.retry.max_retries + 1}` : ""}</dd>
      <dt>Submitted</dt><dd><${Time} ms=${view.submitted_ms} /> ${view.submitted_by && html`by ${view.submitted_by}`}</dd>
      <dt>Due</dt><dd><${Time} ms=${view.due_ms} /> <span class="muted">${since(view.due_ms)}</span></dd>
      ${view.job && view.job.flow && view.job.flow.id && html`<dt>Flow</dt><dd><a class="flow-link" href=${"#/flows/" + encodeURIComponent(view.job.flow.id)}>${view.job.flow.id}</a> <span class="muted">node ${view.job.flow.node}</span></dd>`}
      ${view.schedule_id && html`<dt>Schedule</dt><dd><a href=${"#/schedules/" + encodeURIComponent(view.schedule_id)}>${view.schedule_id}</a></dd>`}
      ${view.labels && Object.keys(view.labels).length > 0 && html`<dt>Labels</dt><dd>${Object.entries(view.labels).map(([key, value]) => html`<a class="label-chip" href=${"#/jobs?label=" + encodeURIComponent(key + "=" + value)}>${key}=${value}</a> `)}</dd>`}
      ${view.reason && html`<dt>Reason</dt><dd>${view.reason}</dd>`}
    </dl>
    <${Actions} view=${view} session=${session} onDone=${job.refresh} />
    <h2>Lifecycle</h2>
    <${Timeline} view=${view} />
    <h2>Result</h2>
    ${result && result.state ? html`<dl class="facts">
      <dt>Outcome</dt><dd><${State} state=${result.state} /> attempt ${(result.attempt || 0) + 1}</dd>
      <dt>Worker</dt><dd>${result.worker_id || "–"}</dd>
      <dt>Started</dt><dd><${Time} ms=${result.started_ms} /></dd>
      <dt>Finished</dt><dd><${Time} ms=${result.finished_ms} /> ${result.started_ms && result.finished_ms && html`<span class="muted">(${Number(result.finished_ms) - Number(result.started_ms)} ms)</span>`}</dd>
      ${result.http_status ? html`<dt>HTTP status</dt><dd>${result.http_status}</dd>` : null}
      ${result.exit_code ? html`<dt>Exit code</dt><dd>${result.exit_code}</dd>` : null}
      ${result.error && html`<dt>Error</dt><dd class="reason">${result.error}</dd>`}
    </dl><h3>Output</h3><${Output} text=${decodeBytes(result.output)} />` : html`<p class="muted">No result yet.</p>`}
    <details><summary>Definition</summary><pre class="output">${JSON.stringify(view.job || {}, null, 2)}</pre></details>
  </section>`;
}
