import { useEffect, useState } from "preact/hooks";
import { get, post, query, streamEvents } from "../api.js";
import { ErrorNote, RunLink, StateBadge, can, duration, html, isDone, json, navigate, time, usePoll } from "../util.js";

// Runs queued by this one: history pages queued since it, those whose from_run_id is it.
async function children(run, signal) {
  if (!run.queued) return [];
  const found = [];
  let cursor = "";
  for (let page = 0; page < 4; page++) {
    const answer = await get(`tasks-history${query({ start: run.queued, limit: 500, cursor })}`, signal);
    found.push(...answer.data.filter((other) => other.from_run_id === run.id));
    cursor = answer.cursor;
    if (!cursor) break;
  }
  return found;
}

export function RunPage({ id, me }) {
  const [run, setRun] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const [note, setNote] = useState("");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let stop = () => {};
    let cancelled = false;
    setRun(null);
    setError(null);
    get(`runs/${encodeURIComponent(id)}`)
      .then((first) => {
        if (cancelled) return;
        setRun(first);
        if (isDone(first.state)) return;
        setLive(true);
        stop = streamEvents(
          `runs/${encodeURIComponent(id)}/events`,
          (_name, data) => setRun(data),
          async (streamError) => {
            setLive(false);
            if (cancelled) return;
            if (streamError) setError(streamError);
            // The stream ends at the final state: read the run once more for all its fields.
            try {
              setRun(await get(`runs/${encodeURIComponent(id)}`));
            } catch (again) {
              setError(again);
            }
          }
        );
      })
      .catch((failure) => !cancelled && setError(failure));
    return () => {
      cancelled = true;
      stop();
    };
  }, [id]);

  const kids = usePoll((signal) => (run ? children(run, signal) : Promise.resolve([])), run && !isDone(run.state) ? 5000 : 0, [
    run ? run.id : "",
    run ? isDone(run.state) : false,
  ]);

  if (error && !run) return html`<section class="page"><h1>Run</h1><${ErrorNote} error=${error} /></section>`;
  if (!run) return html`<section class="page"><h1>Run</h1><p class="muted">loading…</p></section>`;

  const act = async (what) => {
    setBusy(true);
    setNote("");
    try {
      if (what === "abort") {
        const answer = await post(`runs/${encodeURIComponent(run.id)}/abort`, { reason });
        setRun(answer);
        setNote("abort requested");
      } else {
        const again = await post(`runs/${encodeURIComponent(run.id)}/rerun`);
        navigate(`runs/${again.id}`);
      }
    } catch (failure) {
      setNote(failure.message);
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="page" data-page="run" data-run=${run.id}>
    <h1>Run <span class="mono">${run.id}</span></h1>
    <p class="headline">
      <a href=${`#/runs?task=${encodeURIComponent(run.task)}`}>${run.task}</a>
      <${StateBadge} state=${run.state} />
      ${live ? html`<span class="muted" data-testid="live">● live</span>` : null}
    </p>
    <${ErrorNote} error=${error} />
    <div class="actions">
      ${!isDone(run.state) && can(me, "operate")
        ? html`<input aria-label="abort reason" placeholder="reason" value=${reason} onInput=${(event) => setReason(event.currentTarget.value)} />
            <button class="danger" disabled=${busy} onClick=${() => act("abort")}>Abort</button>`
        : null}
      ${can(me, "queue") ? html`<button disabled=${busy} onClick=${() => act("rerun")}>Re-run</button>` : null}
      ${note ? html`<span class="note" role="status">${note}</span>` : null}
    </div>
    <div class="cards">
      <div class="card">
        <h2>Timings</h2>
        <dl class="facts">
          <dt>queued</dt><dd>${time(run.queued)}</dd>
          <dt>started</dt><dd>${time(run.start)}</dd>
          <dt>ended</dt><dd>${time(run.end)}</dd>
          <dt>waited</dt><dd>${duration(run.queued, run.start)}</dd>
          <dt>took</dt><dd>${run.start ? duration(run.start, run.end) : "—"}</dd>
        </dl>
      </div>
      <div class="card">
        <h2>Where</h2>
        <dl class="facts">
          <dt>priority</dt><dd>${run.priority}</dd>
          <dt>attempt</dt><dd data-testid="attempt">${run.attempt}</dd>
          <dt>worker</dt><dd class="mono">${run.worker_id || "—"}</dd>
          <dt>trace</dt><dd class="mono" data-testid="trace-id">${run.trace_id || "—"}</dd>
          <dt>from run</dt><dd><${RunLink} id=${run.from_run_id} /></dd>
          <dt>root run</dt><dd>${run.root_run_id && run.root_run_id !== run.id ? html`<${RunLink} id=${run.root_run_id} />` : html`<span class="muted">this one</span>`}</dd>
          <dt>reason</dt><dd>${run.reason || "—"}</dd>
        </dl>
      </div>
    </div>
    <div class="card wide">
      <h2>Params <span class="muted">(secrets masked)</span></h2>
      <pre data-testid="params">${json(run.params)}</pre>
    </div>
    <div class="card wide">
      <h2>Result</h2>
      <pre data-testid="result">${run.result === null || run.result === undefined ? "—" : json(run.result)}</pre>
    </div>
    ${run.error
      ? html`<div class="card wide failed" data-testid="run-error">
          <h2>Error: ${run.error.type}</h2>
          <p>${run.error.message}</p>
          ${run.error.traceback ? html`<details open><summary>traceback</summary><pre>${run.error.traceback}</pre></details>` : null}
        </div>`
      : null}
    <div class="card wide">
      <h2>Output tail</h2>
      ${run.output_tail.length ? html`<pre class="output" data-testid="output">${run.output_tail.join("\n")}</pre>` : html`<p class="muted">no output</p>`}
    </div>
    <div class="card wide">
      <h2>Runs it queued</h2>
      ${kids.data && kids.data.length
        ? html`<ul class="plain">${kids.data.map(
            (child) => html`<li key=${child.id}><${RunLink} id=${child.id} /> ${child.task} <${StateBadge} state=${child.state} /></li>`
          )}</ul>`
        : html`<p class="muted">${kids.loading ? "looking…" : "none"}</p>`}
    </div>
  </section>`;
}
