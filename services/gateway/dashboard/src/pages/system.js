import { get } from "../api.js";
import { ErrorNote, RunLink, ago, html, seconds, time, usePoll, useNow } from "../util.js";
import { Load } from "./overview.js";

export function Schedules() {
  const now = useNow();
  const answer = usePoll((signal) => get("schedules", signal), 2000, []);
  const data = answer.data;
  return html`<section class="page" data-page="schedules">
    <h1>Schedules</h1>
    <${ErrorNote} error=${answer.error} />
    ${data
      ? html`<p>
            leader <span class="mono" data-testid="leader">${data.leader_id || "none"}</span>
            ${data.leader_since ? html` since ${time(data.leader_since)}` : null} · lateness over ${data.lateness.count} slots: p50
            ${seconds(data.lateness.p50)}, p99 ${seconds(data.lateness.p99)}, max ${seconds(data.lateness.max)}
          </p>
          <div class="table-wrap">
            <table class="stack" data-testid="schedules-table">
              <thead><tr><th>Task</th><th>Schedule</th><th>Enabled</th><th>Next fire</th><th>Last slot</th><th>Last run</th><th>Missed</th><th>Last error</th></tr></thead>
              <tbody>
                ${data.schedules.map(
                  (item) => html`<tr key=${item.task} data-task=${item.task}>
                    <td data-label="Task"><a href=${`#/tasks/${encodeURIComponent(item.task)}`}>${item.task}</a></td>
                    <td data-label="Schedule">${item.schedule}</td>
                    <td data-label="Enabled">${item.enabled ? "yes" : "no"}</td>
                    <td data-label="Next fire" title=${time(item.next_fire)}>${item.next_fire ? ago(item.next_fire, now) : "—"}</td>
                    <td data-label="Last slot" title=${time(item.last_slot)}>${item.last_slot ? ago(item.last_slot, now) : "—"}</td>
                    <td data-label="Last run"><${RunLink} id=${item.last_run_id} /></td>
                    <td data-label="Missed" class=${item.missed_slots ? "warn" : ""}>${item.missed_slots}</td>
                    <td data-label="Last error" class="error-text">${item.last_error || ""}</td>
                  </tr>`
                )}
              </tbody>
            </table>
          </div>
          ${data.schedules.length === 0 ? html`<p class="muted">no scheduled task</p>` : null}`
      : html`<p class="muted">loading…</p>`}
  </section>`;
}

export function Workers() {
  const now = useNow();
  const answer = usePoll((signal) => get("workers", signal), 2000, []);
  return html`<section class="page" data-page="workers">
    <h1>Workers</h1>
    <${ErrorNote} error=${answer.error} />
    <div class="table-wrap">
      <table class="stack" data-testid="workers-table">
        <thead><tr><th>Worker</th><th>Kind</th><th>Tasks</th><th>Load</th><th>Last seen</th></tr></thead>
        <tbody>
          ${(answer.data || []).map(
            (worker) => html`<tr key=${worker.worker_id} data-worker=${worker.worker_id}>
              <td data-label="Worker" class="mono">${worker.worker_id}</td>
              <td data-label="Kind"><span class="tag">${worker.kind}</span></td>
              <td data-label="Tasks" class="task-list">${worker.tasks.join(", ")}</td>
              <td data-label="Load"><${Load} running=${worker.running} concurrency=${worker.concurrency} /></td>
              <td data-label="Last seen" title=${time(worker.last_seen)}>${ago(worker.last_seen, now)}</td>
            </tr>`
          )}
        </tbody>
      </table>
    </div>
    ${answer.data && answer.data.length === 0 ? html`<p class="muted">no live worker</p>` : null}
  </section>`;
}

export function DeadLetters() {
  const answer = usePoll((signal) => get("dead-letters?limit=100", signal), 5000, []);
  const letters = answer.data ? answer.data.data : [];
  return html`<section class="page" data-page="dead-letters">
    <h1>Dead letters</h1>
    <p class="muted">Run snapshots history refused, kept until retried or dropped (the newest 100).</p>
    <${ErrorNote} error=${answer.error} />
    <div class="table-wrap">
      <table class="stack">
        <thead><tr><th>Run</th><th>Task</th><th>State</th><th>Reason</th><th>When</th><th>Bytes</th></tr></thead>
        <tbody>
          ${letters.map(
            (letter) => html`<tr key=${letter.id}>
              <td data-label="Run"><${RunLink} id=${letter.run_id} /></td>
              <td data-label="Task">${letter.task}</td>
              <td data-label="State">${letter.state}</td>
              <td data-label="Reason">${letter.reason}</td>
              <td data-label="When">${time(letter.time)}</td>
              <td data-label="Bytes">${letter.size_bytes}</td>
            </tr>`
          )}
        </tbody>
      </table>
    </div>
    ${answer.data && letters.length === 0 ? html`<p class="muted">none</p>` : null}
  </section>`;
}
