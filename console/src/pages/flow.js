// Flows: the tenant's flows newest first, and one flow: its state and counts (the view keeps them
// per flow, so they never need every node) and its nodes in keyset pages of 50, each linked to its
// job. Kept fresh by the tenant's events about the flow's nodes, and every 5 s.
import { useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { useEvents, usePolled } from "../poll.js";
import { may } from "../session.js";
import { ErrorBox, Loading, Pager, State, Time, usePages } from "../util.js";

const kNodesPerPage = 50;
const kFlowsPerPage = 50;
const kFlowEnded = new Set(["SUCCEEDED", "FAILED", "ENDED", "REJECTED"]);

const Counts = ({ counts }) => html`<span class="flow-counts" data-testid="flow-counts">
  ${counts.ended} of ${counts.nodes} ended: ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.cancelled} cancelled or skipped${counts.waiting ? `, ${counts.waiting} waiting` : ""}
</span>`;

export function Flows() {
  const pages = usePages();
  const { token } = pages;
  const flows = usePolled(() => call("/v1/flows", { query: { page_size: kFlowsPerPage, page_token: token } }), token === "" ? 5000 : 0, [token]);
  const list = (flows.data && flows.data.flows) || [];
  return html`<section>
    <h1>Flows</h1>
    <${ErrorBox} error=${flows.error} />
    ${flows.loading ? html`<${Loading} />` : list.length === 0 ? html`<p class="muted empty">No flows yet.</p>` : html`
    <div class="table-wrap"><table class="flows">
      <thead><tr><th>Flow</th><th>State</th><th>Nodes</th><th>Submitted</th></tr></thead>
      <tbody>${list.map((flow) => html`<tr key=${flow.id}>
        <td><a href=${"#/flows/" + encodeURIComponent(flow.id)}>${flow.id}</a></td>
        <td><${State} state=${flow.state} /></td>
        <td><${Counts} counts=${flow.counts} /></td>
        <td><${Time} ms=${flow.submitted_ms} /> ${flow.submitted_by && html`by ${flow.submitted_by}`}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} pages=${pages} next=${flows.data && flows.data.next_page_token} busy=${flows.loading} />
  </section>`;
}

function FlowActions({ flow, session, onDone }) {
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  if (!may(session, "manage-job", flow)) return html`<p class="muted actions-none">Your role (${session.role}) cannot change this flow.</p>`;
  const id = encodeURIComponent(flow.id);
  const act = async (name, path, body, said) => {
    setBusy(name);
    setError(null);
    setNotice("");
    try {
      await call(path, { method: "POST", body });
      setNotice(said);
      onDone();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy("");
    }
  };
  const buttons = [];
  if (!kFlowEnded.has(flow.state)) {
    buttons.push(html`<button class="danger" disabled=${!!busy} onClick=${() => window.confirm(`Cancel every node of flow ${flow.id} that has not ended?`) && act("cancel", `/v1/flows/${id}:cancel`, { reason: `cancelled in the console by ${session.subject}` }, "Cancel sent: the nodes that have not ended are cancelled.")}>Cancel flow</button>`);
  }
  if (flow.state === "FAILED" || flow.state === "ENDED") {
    buttons.push(html`<button disabled=${!!busy} onClick=${() => act("retry", `/v1/flows/${id}:retry`, undefined, "Retry sent: the DEAD nodes and their dependants run again (the dispatcher refuses a flow with no DEAD node: see the dead letters).")}>Retry failed nodes</button>`);
  }
  if (buttons.length === 0) return null;
  return html`<div class="actions">${buttons}${busy && html`<span class="muted"> ${busy}…</span>`}</div>
    ${notice && html`<div class="notice" role="status">${notice}</div>`}
    <${ErrorBox} error=${error} />`;
}

export function FlowPage({ id, session }) {
  const pages = usePages();
  const { token } = pages;
  const flow = usePolled(() => call(`/v1/flows/${encodeURIComponent(id)}`, { query: { page_size: kNodesPerPage, page_token: token } }), 5000, [id, token]);
  // A node's change reloads the page shown (at most once a second).
  const pending = useRef(null);
  useEvents((events) => {
    if (pending.current || !events.some((event) => event.id.startsWith(id + "/"))) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      flow.refresh();
    }, 1000);
  }, [id, token]);
  if (flow.loading && !flow.data) return html`<${Loading} />`;
  if (!flow.data) return html`<section><h1>Flow ${id}</h1><${ErrorBox} error=${flow.error} /><p><a href="#/flows">All flows</a></p></section>`;
  const view = flow.data;
  const nodes = view.nodes || [];
  return html`<section>
    <p><a href="#/flows">← Flows</a></p>
    <h1 class="flow-title">${view.id} <${State} state=${view.state} /></h1>
    <${ErrorBox} error=${flow.error} />
    <dl class="facts">
      <dt>Nodes</dt><dd><${Counts} counts=${view.counts} /></dd>
      <dt>Submitted</dt><dd><${Time} ms=${view.submitted_ms} /> ${view.submitted_by && html`by ${view.submitted_by}`}</dd>
      ${view.run_at_ms > 0 && html`<dt>Starts</dt><dd><${Time} ms=${view.run_at_ms} /></dd>`}
      <dt>Fail fast</dt><dd>${view.fail_fast ? "yes: a DEAD node cancels the rest" : "no"}</dd>
      ${view.labels && Object.keys(view.labels).length > 0 && html`<dt>Labels</dt><dd>${Object.entries(view.labels).map(([key, value]) => html`<span class="label-chip">${key}=${value}</span> `)}</dd>`}
      ${view.reason && html`<dt>Reason</dt><dd class="reason">${view.reason}</dd>`}
    </dl>
    <${FlowActions} flow=${view} session=${session} onDone=${flow.refresh} />
    <h2>Nodes</h2>
    <div class="table-wrap"><table class="flow-nodes" data-testid="flow-nodes">
      <thead><tr><th>Node</th><th>State</th><th>Attempt</th><th>Depends on</th><th>Trigger</th><th>Updated</th><th>Reason</th></tr></thead>
      <tbody>${nodes.map((node) => html`<tr key=${node.name}>
        <td><a href=${"#/jobs/" + encodeURIComponent(node.job_id)}>${node.name}</a></td>
        <td>${node.forgotten ? html`<span class="muted" title="its job left the view after it ended">forgotten</span>` : html`<${State} state=${node.state} />`}</td>
        <td class="number">${node.forgotten ? "" : (node.attempt || 0) + 1}</td>
        <td>${(node.depends_on || []).join(", ") || html`<span class="muted">–</span>`}</td>
        <td>${(node.trigger || "").toLowerCase()}</td>
        <td><${Time} ms=${node.updated_ms} /></td>
        <td class="reason">${node.reason || ""}</td>
      </tr>`)}</tbody>
    </table></div>
    <${Pager} pages=${pages} next=${view.next_page_token} busy=${flow.loading} labels=${["← Previous", "Next →"]} note=${html`<span class="muted">nodes page ${pages.number}</span>`} />
  </section>`;
}
