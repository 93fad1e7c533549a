// fluid's dashboard: hash routes over the gateway's JSON routes (same origin).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get, onUnauthorized, setToken, token } from "./api.js";
import { Overview } from "./pages/overview.js";
import { RunPage } from "./pages/run.js";
import { Runs } from "./pages/runs.js";
import { DeadLetters, Schedules, Workers } from "./pages/system.js";
import { TaskPage, Tasks } from "./pages/tasks.js";
import { html, useHash } from "./util.js";

const NAV = [
  ["", "Overview"],
  ["runs", "Runs"],
  ["tasks", "Tasks"],
  ["schedules", "Schedules"],
  ["workers", "Workers"],
  ["dead-letters", "Dead letters"],
];

function Login({ me, onToken }) {
  const [value, setValue] = useState("");
  const submit = (event) => {
    event.preventDefault();
    onToken(value.trim());
  };
  return html`<section class="page login" data-page="login">
    <h1>Sign in</h1>
    <p>This system checks callers: paste a bearer token (<code>fluid auth token --roles read,queue</code> mints one). It is kept in this tab only.</p>
    ${me && me.error && token() ? html`<p class="error" role="alert">${me.error}</p>` : null}
    <form onSubmit=${submit}>
      <label>Token <input type="password" name="token" autocomplete="off" value=${value} onInput=${(event) => setValue(event.currentTarget.value)} /></label>
      <div class="buttons"><button type="submit" disabled=${!value.trim()}>Sign in</button></div>
    </form>
  </section>`;
}

function Page({ route, me }) {
  const [first, second] = route.parts;
  if (!first) return html`<${Overview} />`;
  if (first === "runs" && second) return html`<${RunPage} id=${second} me=${me} />`;
  if (first === "runs") return html`<${Runs} key=${JSON.stringify(route.params)} params=${route.params} />`;
  if (first === "tasks" && second) return html`<${TaskPage} key=${second} name=${second} me=${me} />`;
  if (first === "tasks") return html`<${Tasks} me=${me} />`;
  if (first === "schedules") return html`<${Schedules} />`;
  if (first === "workers") return html`<${Workers} />`;
  if (first === "dead-letters") return html`<${DeadLetters} />`;
  return html`<section class="page"><h1>Not found</h1><p><a href="#/">Overview</a></p></section>`;
}

function App() {
  const route = useHash();
  const [me, setMe] = useState(null);
  const [failure, setFailure] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    let retry = null;
    get("whoami")
      .then((answer) => {
        setMe(answer);
        setFailure(null);
      })
      .catch((error) => {
        setFailure(error);
        // The gateway is down or restarting: ask again in a while.
        retry = setTimeout(() => setVersion((n) => n + 1), 3000);
      });
    return () => clearTimeout(retry);
  }, [version]);
  useEffect(() => onUnauthorized(() => setVersion((n) => n + 1)), []);
  const signIn = (value) => {
    setToken(value);
    setVersion((n) => n + 1);
  };
  const signedOut = me && me.auth && me.roles.length === 0;
  const current = route.parts[0] || "";
  return html`<div class="shell">
    <header class="top">
      <a class="brand" href="#/">fluid</a>
      <nav>
        ${NAV.map(
          ([path, label]) => html`<a key=${path} href=${`#/${path}`} class=${current === path ? "active" : ""} aria-current=${current === path ? "page" : undefined}>${label}</a>`
        )}
      </nav>
      <span class="who" data-testid="who">
        ${me && me.auth
          ? me.roles.length
            ? html`${me.subject} <span class="muted">(${me.roles.join(", ")})</span> <button class="link" onClick=${() => signIn("")}>sign out</button>`
            : "signed out"
          : me
            ? html`<span class="muted">auth off</span>`
            : ""}
      </span>
    </header>
    <main>
      ${failure ? html`<p class="error" role="alert">The gateway does not answer: ${failure.message}</p>` : null}
      ${!me ? html`<p class="muted">connecting…</p>` : signedOut ? html`<${Login} me=${me} onToken=${signIn} />` : html`<${Page} route=${route} me=${me} />`}
    </main>
  </div>`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "loading" line shown until the bundle runs
render(html`<${App} />`, root);
