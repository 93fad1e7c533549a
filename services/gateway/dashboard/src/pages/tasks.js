import { useState } from "preact/hooks";
import { get, patch, post } from "../api.js";
import { ErrorNote, can, html, json, navigate, usePoll } from "../util.js";

function Toggle({ task, me, onChanged }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const allowed = can(me, "operate");
  if (!allowed) return html`<span class="muted" data-testid=${`enabled-${task.name}`}>${task.enabled ? "enabled" : "disabled"}</span>`;
  const flip = async () => {
    setBusy(true);
    setError(null);
    try {
      onChanged(await patch(`tasks/${encodeURIComponent(task.name)}`, { enabled: !task.enabled }));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<label class="switch" title="enable or disable the task">
    <input
      type="checkbox"
      role="switch"
      aria-label=${`${task.name} enabled`}
      data-testid=${`toggle-${task.name}`}
      checked=${task.enabled}
      disabled=${busy}
      onChange=${flip}
    />
    <span>${task.enabled ? "enabled" : "disabled"}</span>
    ${error ? html`<span class="error">${error.message}</span>` : null}
  </label>`;
}

export function Tasks({ me }) {
  const tasks = usePoll((signal) => get("tasks", signal), 5000, []);
  // A toggled task as the PATCH answered it, until the next list (which has it) arrives.
  const [changed, setChanged] = useState({ of: null, tasks: {} });
  const fresh = changed.of === tasks.data ? changed.tasks : {};
  const list = (tasks.data || []).map((task) => fresh[task.name] || task);
  const onChanged = (task) => {
    setChanged({ of: tasks.data, tasks: { ...fresh, [task.name]: task } });
    tasks.reload();
  };
  return html`<section class="page" data-page="tasks">
    <h1>Tasks</h1>
    <${ErrorNote} error=${tasks.error} />
    <div class="table-wrap">
      <table class="stack" data-testid="tasks-table">
        <thead><tr><th>Task</th><th>About</th><th>Tags</th><th>Schedule</th><th>Workers</th><th>Running</th><th>Enabled</th><th></th></tr></thead>
        <tbody>
          ${list.map(
            (task) => html`<tr key=${task.name} data-task=${task.name}>
              <td data-label="Task"><a href=${`#/tasks/${encodeURIComponent(task.name)}`}>${task.name}</a>${task.cpu_bound ? html` <span class="tag">cpu</span>` : null}</td>
              <td data-label="About">${task.short_description}</td>
              <td data-label="Tags">${task.tags.map((tag) => html`<span key=${tag} class="tag">${tag}</span>`)}</td>
              <td data-label="Schedule">${task.schedule || "—"}</td>
              <td data-label="Workers">${task.workers}</td>
              <td data-label="Running">${task.running}</td>
              <td data-label="Enabled"><${Toggle} task=${task} me=${me} onChanged=${onChanged} /></td>
              <td data-label="">${can(me, "queue") ? html`<a class="button" href=${`#/tasks/${encodeURIComponent(task.name)}`}>Queue…</a>` : null}</td>
            </tr>`
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

// The one simple JSON-schema type of a property ("string", "number", "integer",
// "boolean"), seeing through Optional (anyOf with null); "" for anything else.
function simpleType(schema) {
  if (!schema || schema.$ref || schema.enum) return "";
  let type = schema.type;
  if (!type && Array.isArray(schema.anyOf)) {
    const others = schema.anyOf.filter((option) => option.type !== "null");
    if (others.length === 1 && !others[0].$ref && !others[0].enum) type = others[0].type;
  }
  return ["string", "number", "integer", "boolean"].includes(type) ? type : "";
}

function secret(schema) {
  const options = [schema, ...(schema.anyOf || [])];
  return options.some((option) => option && (option.format === "password" || option.writeOnly));
}

function initialValue(schema) {
  const type = simpleType(schema);
  if (type === "boolean") return schema.default === true;
  if (schema.default === undefined || schema.default === null) return "";
  return type ? String(schema.default) : json(schema.default);
}

// The params to send: the fields filled in (an empty one is left out, so the task's
// default applies and a missing required one is the gateway's 422 to tell).
function paramsOf(properties, values) {
  const params = {};
  for (const [name, schema] of Object.entries(properties)) {
    const type = simpleType(schema);
    const value = values[name];
    if (type === "boolean") {
      params[name] = !!value;
      continue;
    }
    if (value === "" || value === undefined) continue;
    if (type === "number" || type === "integer") {
      const number = Number(value);
      params[name] = Number.isNaN(number) ? value : number;
    } else if (type === "string") {
      params[name] = value;
    } else {
      try {
        params[name] = JSON.parse(value);
      } catch {
        throw new Error(`${name}: not valid JSON`);
      }
    }
  }
  return params;
}

function QueueForm({ task }) {
  const schema = task.params_schema || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const names = Object.keys(properties);
  // No declared field but any accepted (a task without a params model): one JSON object.
  const free = names.length === 0 && schema.additionalProperties !== false;
  const [values, setValues] = useState(() => Object.fromEntries(names.map((name) => [name, initialValue(properties[name])])));
  const [body, setBody] = useState("{}");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setError("");
    let params;
    try {
      params = free ? JSON.parse(body) : paramsOf(properties, values);
    } catch (failure) {
      setError(failure instanceof SyntaxError ? "params: not valid JSON" : failure.message);
      return;
    }
    setBusy(true);
    try {
      const run = await post(`tasks/${encodeURIComponent(task.name)}`, params);
      navigate(`runs/${run.id}`);
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  };
  const set = (name, value) => setValues({ ...values, [name]: value });
  return html`<form class="queue-form" onSubmit=${submit} data-testid="queue-form">
    ${names.map((name) => {
      const property = properties[name];
      const type = simpleType(property);
      const label = html`<span>${property.title || name}${required.has(name) ? html`<abbr class="required" title="required">*</abbr>` : null}</span>`;
      const help = property.description ? html`<small class="muted">${property.description}</small>` : null;
      const common = { name, "aria-required": required.has(name) ? "true" : undefined };
      if (type === "boolean") {
        return html`<label key=${name} class="check"><input type="checkbox" ...${common} checked=${values[name]} onChange=${(event) => set(name, event.currentTarget.checked)} /> ${label} ${help}</label>`;
      }
      if (type) {
        const inputType = type === "string" ? (secret(property) ? "password" : "text") : "number";
        return html`<label key=${name}>${label}
          <input type=${inputType} step=${type === "integer" ? "1" : type === "number" ? "any" : undefined} ...${common} value=${values[name]} onInput=${(event) => set(name, event.currentTarget.value)} />
          ${help}</label>`;
      }
      return html`<label key=${name}>${label} <small class="muted">(JSON)</small>
        <textarea rows="4" ...${common} value=${values[name]} onInput=${(event) => set(name, event.currentTarget.value)}></textarea>
        ${help}</label>`;
    })}
    ${free
      ? html`<label>Params (JSON object)<textarea name="params" rows="6" value=${body} onInput=${(event) => setBody(event.currentTarget.value)}></textarea></label>`
      : null}
    ${names.length === 0 && !free ? html`<p class="muted">This task takes no params.</p>` : null}
    <div class="buttons"><button type="submit" disabled=${busy}>Queue a run</button></div>
    ${error ? html`<p class="error" role="alert" data-testid="queue-error">${error}</p>` : null}
  </form>`;
}

export function TaskPage({ name, me }) {
  const task = usePoll((signal) => get(`tasks/${encodeURIComponent(name)}`, signal), 0, [name]);
  const [current, setCurrent] = useState(null);
  const shown = current || task.data;
  return html`<section class="page" data-page="task">
    <h1>Task ${name}</h1>
    <${ErrorNote} error=${task.error} />
    ${shown
      ? html`<p>${shown.description || shown.short_description}</p>
          <dl class="facts">
            <dt>module</dt><dd class="mono">${shown.module}</dd>
            <dt>priority</dt><dd>${shown.priority}</dd>
            <dt>timeout</dt><dd>${shown.timeout_seconds} s</dd>
            <dt>max concurrency</dt><dd>${shown.max_concurrency || "unlimited"}</dd>
            <dt>schedule</dt><dd>${shown.schedule || "—"}</dd>
            <dt>workers</dt><dd>${shown.workers}</dd>
            <dt>enabled</dt><dd><${Toggle} task=${shown} me=${me} onChanged=${setCurrent} /></dd>
          </dl>
          <p><a href=${`#/runs?task=${encodeURIComponent(name)}`}>its runs</a></p>
          ${can(me, "queue") ? html`<div class="card wide"><h2>Queue a run</h2><${QueueForm} task=${shown} /></div>` : null}`
      : html`<p class="muted">loading…</p>`}
  </section>`;
}
