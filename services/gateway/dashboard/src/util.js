import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

export const FINAL_STATES = ["success", "failure", "aborted", "rate_limited", "interrupted"];
export const STATES = ["init", "queued", "running", ...FINAL_STATES];

export function isDone(state) {
  return FINAL_STATES.includes(state);
}

// What the caller's roles allow (admin: everything), as /whoami tells.
export function can(me, role) {
  const roles = (me && me.roles) || [];
  return roles.includes("admin") || roles.includes(role);
}

// Calls load(signal) now and every `every` ms after each answer, until unmounted or the
// deps change; keeps the last answer while the next is on its way.
export function usePoll(load, every, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let timer = null;
    let stopped = false;
    const controller = new AbortController();
    const once = async () => {
      try {
        const data = await load(controller.signal);
        if (!stopped) setState({ data, error: null, loading: false });
      } catch (error) {
        if (!stopped && error.name !== "AbortError") setState((old) => ({ ...old, error, loading: false }));
      }
      if (!stopped && every) timer = setTimeout(once, every);
    };
    once();
    return () => {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}

// The route in the hash: "#/runs/abc?task=x" -> { parts: ["runs", "abc"], params: {task: "x"} }.
export function parseHash(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, search = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(search)) };
}

export function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parseHash(hash);
}

export function navigate(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) if (value) search.set(key, value);
  const text = search.toString();
  location.hash = `#/${path}${text ? `?${text}` : ""}`;
}

export function useNow(every = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(timer);
  }, [every]);
  return now;
}

export function usePrevious(value) {
  const ref = useRef();
  useEffect(() => {
    ref.current = value;
  });
  return ref.current;
}

export function time(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function ago(value, now = Date.now()) {
  if (!value) return "—";
  const seconds = Math.round((now - new Date(value).getTime()) / 1000);
  const future = seconds < 0;
  const size = Math.abs(seconds);
  const text =
    size < 60 ? `${size}s` : size < 3600 ? `${Math.floor(size / 60)}m ${size % 60}s` : `${Math.floor(size / 3600)}h ${Math.floor((size % 3600) / 60)}m`;
  return future ? `in ${text}` : `${text} ago`;
}

export function duration(start, end) {
  if (!start) return "—";
  const ms = (end ? new Date(end) : new Date()).getTime() - new Date(start).getTime();
  if (ms < 1000) return `${Math.max(ms, 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

export function seconds(value) {
  if (value == null) return "—";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function StateBadge({ state }) {
  return html`<span class="state state-${state}" data-state=${state}>${state}</span>`;
}

export function RunLink({ id }) {
  if (!id) return html`<span class="muted">—</span>`;
  return html`<a class="mono" href=${`#/runs/${encodeURIComponent(id)}`} title=${id}>${id.slice(0, 12)}</a>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}
