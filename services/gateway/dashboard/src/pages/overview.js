import { useEffect, useRef, useState } from "preact/hooks";
import { get, query } from "../api.js";
import { ErrorNote, ago, html, isDone, seconds, usePoll, useNow } from "../util.js";

const MINUTES = 30;
const PAGE = 500;
const MAX_PAGES = 20;

// Runs that ended in the last MINUTES minutes, per minute: finished (any final state but
// failure) and failed. Read from /tasks-history pages queued since the window's start.
async function perMinute(signal) {
  const now = Date.now();
  const since = now - MINUTES * 60000;
  const finished = new Array(MINUTES).fill(0);
  const failed = new Array(MINUTES).fill(0);
  let cursor = "";
  let complete = true;
  for (let page = 0; ; page++) {
    if (page === MAX_PAGES) {
      complete = false;
      break;
    }
    const answer = await get(`tasks-history${query({ start: new Date(since).toISOString(), limit: PAGE, cursor })}`, signal);
    for (const run of answer.data) {
      if (!isDone(run.state) || !run.end) continue;
      const at = new Date(run.end).getTime();
      if (at < since || at > now) continue;
      const minute = Math.min(MINUTES - 1, Math.floor((at - since) / 60000));
      (run.state === "failure" ? failed : finished)[minute] += 1;
    }
    cursor = answer.cursor;
    if (!cursor) break;
  }
  return { finished, failed, complete, now };
}

// The width the element is drawn at, followed as it changes (the chart is drawn at its real
// size, so its text keeps its size on a phone and a wide screen alike).
function useWidth(fallback) {
  const ref = useRef(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    if (!ref.current) return undefined;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.max(200, Math.round(entry.contentRect.width))));
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

function Chart({ data }) {
  const [ref, width] = useWidth(600);
  const height = 180;
  const left = 34;
  const bottom = 20;
  const top = 8;
  const most = Math.max(1, ...data.finished.map((value, i) => value + data.failed[i]));
  const slot = (width - left) / MINUTES;
  const scale = (value) => ((height - top - bottom) * value) / most;
  const bars = data.finished.map((ok, i) => {
    const bad = data.failed[i];
    const x = left + i * slot + 1;
    const okHeight = scale(ok);
    const badHeight = scale(bad);
    const minutesAgo = MINUTES - i;
    return html`<g key=${i}>
      <title>${`${minutesAgo - 1}–${minutesAgo} min ago: ${ok} finished, ${bad} failed`}</title>
      <rect class="bar-ok" x=${x} width=${slot - 2} y=${height - bottom - okHeight} height=${okHeight} />
      <rect class="bar-failed" x=${x} width=${slot - 2} y=${height - bottom - okHeight - badHeight} height=${badHeight} />
    </g>`;
  });
  return html`<figure class="chart" ref=${ref}>
    <svg viewBox=${`0 0 ${width} ${height}`} role="img" aria-label="runs finished and failed per minute, last 30 minutes" data-testid="throughput-chart">
      <line class="axis" x1=${left} x2=${width} y1=${height - bottom} y2=${height - bottom} />
      <line class="axis" x1=${left} x2=${left} y1=${top} y2=${height - bottom} />
      <text class="tick" x=${left - 4} y=${top + 8} text-anchor="end">${most}</text>
      <text class="tick" x=${left - 4} y=${height - bottom} text-anchor="end">0</text>
      <text class="tick" x=${left} y=${height - 4}>-30 min</text>
      <text class="tick" x=${left + (width - left) / 2} y=${height - 4} text-anchor="middle">-15 min</text>
      <text class="tick" x=${width} y=${height - 4} text-anchor="end">now</text>
      ${bars}
    </svg>
    <figcaption>
      <span class="legend legend-ok"></span> finished (${data.finished.reduce((a, b) => a + b, 0)})
      <span class="legend legend-failed"></span> failed (${data.failed.reduce((a, b) => a + b, 0)})
      ${data.complete ? "" : html` <span class="muted">(more runs than shown: the newest ${PAGE * MAX_PAGES})</span>`}
    </figcaption>
  </figure>`;
}

export function Overview() {
  const now = useNow();
  const status = usePoll((signal) => get("tasks-status", signal), 2000, []);
  const tasks = usePoll((signal) => get("tasks", signal), 2000, []);
  const workers = usePoll((signal) => get("workers", signal), 2000, []);
  const schedules = usePoll((signal) => get("schedules", signal), 5000, []);
  const chart = usePoll(perMinute, 10000, []);

  const queue = status.data ? status.data.queue : {};
  const running = (tasks.data || []).filter((task) => task.running > 0);
  const lateness = schedules.data ? schedules.data.lateness : null;
  return html`<section class="page" data-page="overview">
    <h1>Overview</h1>
    <${ErrorNote} error=${status.error || tasks.error || workers.error} />
    <div class="cards">
      <div class="card" data-testid="queue-depth">
        <h2>Queued</h2>
        <dl class="numbers">
          ${["high", "medium", "low"].map(
            (priority) => html`<div key=${priority}><dt>${priority}</dt><dd data-priority=${priority}>${queue[priority] ?? "…"}</dd></div>`
          )}
        </dl>
      </div>
      <div class="card" data-testid="running-now">
        <h2>Running now</h2>
        <p class="big">${tasks.data ? running.reduce((sum, task) => sum + task.running, 0) : "…"}</p>
        <ul class="plain">
          ${running.map((task) => html`<li key=${task.name}><a href=${`#/runs?task=${encodeURIComponent(task.name)}&state=running`}>${task.name}</a>: ${task.running}</li>`)}
        </ul>
      </div>
      <div class="card" data-testid="dead-letters">
        <h2>Dead letters</h2>
        <p class="big">${status.data ? status.data.dead_letters : "…"}</p>
        <p class="muted">snapshots history refused</p>
      </div>
      <div class="card" data-testid="scheduler">
        <h2>Scheduler</h2>
        ${schedules.error
          ? html`<p class="muted">${schedules.error.message}</p>`
          : html`<p>leader <span class="mono">${schedules.data ? schedules.data.leader_id || "none" : "…"}</span></p>
              ${lateness &&
              html`<p class="muted">lateness over ${lateness.count} slots: p50 ${seconds(lateness.p50)}, p99 ${seconds(lateness.p99)}, max ${seconds(lateness.max)}</p>`}
              <a href="#/schedules">schedules</a>`}
      </div>
    </div>
    <div class="card wide">
      <h2>Runs per minute, last ${MINUTES} minutes</h2>
      <${ErrorNote} error=${chart.error} />
      ${chart.data ? html`<${Chart} data=${chart.data} />` : html`<p class="muted">loading…</p>`}
    </div>
    <div class="card wide">
      <h2>Workers</h2>
      ${workers.data && workers.data.length === 0 ? html`<p class="muted">no live worker</p>` : null}
      <ul class="plain workers-load">
        ${(workers.data || []).map(
          (worker) => html`<li key=${worker.worker_id}>
            <span class="mono">${worker.worker_id}</span> <span class="tag">${worker.kind}</span>
            <${Load} running=${worker.running} concurrency=${worker.concurrency} />
            <span class="muted">seen ${ago(worker.last_seen, now)}</span>
          </li>`
        )}
      </ul>
    </div>
  </section>`;
}

export function Load({ running, concurrency }) {
  const share = concurrency ? Math.min(1, running / concurrency) : 0;
  return html`<span class="load" title=${`${running} of ${concurrency || "?"} slots busy`}>
    <span class="load-bar"><span style=${`width:${Math.round(share * 100)}%`}></span></span>
    ${running}/${concurrency || "?"}
  </span>`;
}
