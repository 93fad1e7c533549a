import { useState } from "preact/hooks";
import { get, query } from "../api.js";
import { ErrorNote, RunLink, STATES, StateBadge, duration, html, navigate, time, usePoll } from "../util.js";

const FIELDS = ["task", "state", "start", "end", "params", "tags"];
const LIMIT = 25;

// datetime-local values are local times without a zone; the API wants ISO instants.
function instant(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// Mounted anew (keyed by the filters) whenever the filters in the hash change.
export function Runs({ params }) {
  const filters = Object.fromEntries(FIELDS.map((field) => [field, params[field] || ""]));
  // The cursors of the pages before the shown one, to go back; the shown page's own.
  const [cursors, setCursors] = useState([]);
  const [cursor, setCursor] = useState("");
  const [draft, setDraft] = useState(filters);
  const tasks = usePoll((signal) => get("tasks", signal), 0, []);
  const page = usePoll(
    (signal) =>
      get(
        `tasks-history${query({
          task: filters.task,
          state: filters.state,
          start: instant(filters.start),
          end: instant(filters.end),
          params: filters.params,
          tags: filters.tags
            .split(",")
            .map((tag) => tag.trim())
            .filter(Boolean),
          limit: LIMIT,
          cursor,
        })}`,
        signal
      ),
    2000,
    [cursor]
  );
  let paramsError = "";
  if (draft.params) {
    try {
      const parsed = JSON.parse(draft.params);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) paramsError = "params must be a JSON object";
    } catch {
      paramsError = "params is not valid JSON";
    }
  }
  const submit = (event) => {
    event.preventDefault();
    if (!paramsError) navigate("runs", draft);
  };
  const field = (name) => ({ value: draft[name], onInput: (event) => setDraft({ ...draft, [name]: event.currentTarget.value }) });
  const runs = page.data ? page.data.data : [];
  return html`<section class="page" data-page="runs">
    <h1>Runs</h1>
    <form class="filters" onSubmit=${submit} data-testid="run-filters">
      <label>Task
        <select name="task" ...${field("task")}>
          <option value="">any</option>
          ${(tasks.data || []).map((task) => html`<option key=${task.name} value=${task.name}>${task.name}</option>`)}
          ${draft.task && !(tasks.data || []).some((task) => task.name === draft.task) ? html`<option value=${draft.task}>${draft.task}</option>` : null}
        </select>
      </label>
      <label>State
        <select name="state" ...${field("state")}>
          <option value="">any</option>
          ${STATES.map((state) => html`<option key=${state} value=${state}>${state}</option>`)}
        </select>
      </label>
      <label>Queued from <input type="datetime-local" name="start" step="1" ...${field("start")} /></label>
      <label>to <input type="datetime-local" name="end" step="1" ...${field("end")} /></label>
      <label>Params contain (JSON) <input name="params" placeholder='{"name": "Ada"}' ...${field("params")} /></label>
      <label title="runs of tasks with any of these tags, comma-separated">Tags <input name="tags" placeholder="billing" ...${field("tags")} /></label>
      <div class="buttons">
        <button type="submit" disabled=${!!paramsError}>Filter</button>
        <button type="button" class="secondary" onClick=${() => navigate("runs", {})}>Clear</button>
      </div>
      ${paramsError ? html`<p class="error">${paramsError}</p>` : null}
    </form>
    <${ErrorNote} error=${page.error} />
    <div class="table-wrap">
      <table class="stack runs" data-testid="runs-table">
        <thead><tr><th>Run</th><th>Task</th><th>State</th><th>Queued</th><th>Took</th><th>Attempt</th></tr></thead>
        <tbody>
          ${runs.map(
            (run) => html`<tr key=${run.id} data-run=${run.id} data-task=${run.task}>
              <td data-label="Run"><${RunLink} id=${run.id} /></td>
              <td data-label="Task">${run.task}</td>
              <td data-label="State"><${StateBadge} state=${run.state} /></td>
              <td data-label="Queued">${time(run.queued)}</td>
              <td data-label="Took">${duration(run.start, run.end)}</td>
              <td data-label="Attempt">${run.attempt}</td>
            </tr>`
          )}
        </tbody>
      </table>
    </div>
    ${page.data && runs.length === 0 ? html`<p class="muted">no run matches</p>` : null}
    <div class="pager">
      <button
        class="secondary"
        disabled=${cursors.length === 0}
        onClick=${() => {
          setCursor(cursors[cursors.length - 1]);
          setCursors(cursors.slice(0, -1));
        }}
      >
        ← Newer
      </button>
      <span class="muted">page ${cursors.length + 1} · refreshed every 2 s</span>
      <button
        class="secondary"
        disabled=${!page.data || !page.data.cursor}
        onClick=${() => {
          setCursors([...cursors, cursor]);
          setCursor(page.data.cursor);
        }}
      >
        Older →
      </button>
    </div>
  </section>`;
}
