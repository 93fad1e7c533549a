// The gateway's JSON routes, with the caller's token (sessionStorage) as a bearer.

const TOKEN_KEY = "fluid.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

// FastAPI's "detail": a sentence, or a list of {loc, msg} for a body it refused.
export function describeDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${item.msg}` : item.msg || JSON.stringify(item);
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const bearer = token();
  if (bearer) all.Authorization = `Bearer ${bearer}`;
  return all;
}

// Listeners told when a call is answered 401 (the token is missing or no longer valid).
const unauthorized = new Set();
export function onUnauthorized(listener) {
  unauthorized.add(listener);
  return () => unauthorized.delete(listener);
}

export async function call(method, path, body, signal) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    if (response.status === 401) unauthorized.forEach((listener) => listener());
    throw new ApiError(response.status, data && typeof data === "object" ? data.detail : data);
  }
  return data;
}

export const get = (path, signal) => call("GET", path, undefined, signal);
export const post = (path, body) => call("POST", path, body ?? {});
export const patch = (path, body) => call("PATCH", path, body);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    // A list is the parameter repeated (?tags=a&tags=b), as FastAPI reads lists.
    if (Array.isArray(value)) value.forEach((item) => search.append(key, String(item)));
    else if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Server-Sent Events over fetch, so the bearer token can go in a header (EventSource
// cannot send one). Calls onEvent(name, data) per event until the stream ends or
// the returned function is called; onEnd(error) once at the end.
export function streamEvents(path, onEvent, onEnd) {
  const controller = new AbortController();
  (async () => {
    try {
      const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
      if (!response.ok || !response.body) throw new ApiError(response.status, null);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) onEvent(name, JSON.parse(data.join("\n")));
        }
      }
      onEnd(null);
    } catch (error) {
      if (!controller.signal.aborted) onEnd(error);
    }
  })();
  return () => controller.abort();
}
