// Dead letters: the tenant's DEAD jobs and REJECTED input, newest first, with their reasons;
// operators replay one, or every selected one.
import { useState } from "preact/hooks";
import { html } from "../html.js";
import { call } from "../api.js";
import { usePolled } from "../poll.js";
import { may } from "../session.js";
import { ErrorBox, Loading, Pager, State, Time, usePages } from "../util.js";

const kPageSize = 50;

export function DeadLetters({ session }) {
  const pages = usePages();
  const token = pages.token;
  const list = usePolled(() => call("/v1/dead-letters", { query: { page_size: kPageSize, page_token: token } }), 5000, [token]);
  const [selected, setSelected] = useState(new Set());
  const [outcome, setOutcome] = useState([]);
  const [busy, setBusy] = useState(false);
  const replay = async (ids) => {
    setBusy(true);
    const results = [];
    for (const id of ids) {
      try {
        await call(`/v1/dead-letters/${encodeURIComponent(id)}:replay`, { method: "POST", body: {} });
        results.push({ id, ok: true });
      } catch (error) {
        results.push({ id, ok: false, message: error.message });
      }
    }
    setOutcome(results);
    setSelected(new Set());
    setBusy(false);
    list.refresh();
  };
  if (list.loading) return html`<${Loading} />`;
  const letters = (list.data && list.data.dead_letters) || [];
  const canReplay = may(session, "replay-dead-letters");
  const toggle = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  return html`<section>
    <h1>Dead letters</h1>
    <${ErrorBox} error=${list.error} />
    ${outcome.length > 0 && html`<ul class="notice" role="status">${outcome.map((item) => html`<li>${item.id}: ${item.ok ? "replayed" : item.message}</li>`)}</ul>`}
    ${letters.length === 0 ? html`<p class="muted empty">No dead letters: nothing died and no input was rejected.</p>` : html`
    ${canReplay && html`<div class="actions"><button disabled=${busy || selected.size === 0} onClick=${() => replay([...selected])}>Replay ${selected.size || ""} selected</button></div>`}
    <div class="table-wrap"><table>
      <thead><tr>${canReplay && html`<th><span class="sr-only">select</span></th>`}<th>Job</th><th>State</th><th>Reason</th><th>At</th><th>Attempts</th>${canReplay && html`<th></th>`}</tr></thead>
      <tbody>${letters.map((entry) => {
        const letter = entry.letter || {};
        const replayable = letter.state === "DEAD" && entry.id;
        return html`<tr key=${entry.source}>
          ${canReplay && html`<td>${replayable && html`<input type="checkbox" aria-label=${"select " + entry.id} checked=${selected.has(entry.id)} onChange=${() => toggle(entry.id)} />`}</td>`}
          <td>${entry.id ? html`<a href=${"#/jobs/" + encodeURIComponent(entry.id)}>${entry.id}</a>` : html`<span class="muted">(undecodable input)</span>`}</td>
          <td><${State} state=${letter.state} /></td>
          <td class="reason">${letter.reason}</td>
          <td><${Time} ms=${letter.at_ms} /></td>
          <td class="number">${(letter.history || []).length || ""}</td>
          ${canReplay && html`<td>${replayable && html`<button disabled=${busy} onClick=${() => replay([entry.id])}>Replay</button>`}</td>`}
        </tr>`;
      })}</tbody>
    </table></div>`}
    <${Pager} pages=${pages} next=${list.data && list.data.next_page_token} />
  </section>`;
}
