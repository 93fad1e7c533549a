"""`make bench-peers`: fluid and its peers on the peers' own workload, same Redis, same run.

Runs bench/fluid_bench.py (BENCH_JSON=1) with the project's interpreter, once with history on
SQLite and once on PostgreSQL, then each peer's bench/peers/<peer>/run_bench.py with that
peer's own interpreter (.bench/<peer>/bin/python, made by bench/peers/make_venv.sh), one after
the other. The workload (bench/peers/peer_kit.py): BENCH_RUNS no-op tasks queued one call at a
time with no worker consuming, then drained by one worker process (steady-state runs/s), then
BENCH_ROUND_TRIPS sequential enqueue-and-wait calls (p50/p99); bulk enqueue is its own column
where a system has a bulk API. It prints one table with fluid (sqlite)'s ratio to each system
and writes it as a PNG plot (BENCH_PLOT, default docs/bench-peers.png) titled with the date
and the machine. A system that fails shows "n/a" and why. BENCH_PEERS=saq,arq picks peers
(fluid always runs: the ratios need it). Each system's stderr goes to .bench/logs/<system>.log;
all figures to .bench/peers-last.json. BENCH_PLAIN=1 prints a plain-text table instead of a
rich one. BENCH_WORKER_CONCURRENCY (peers' worker concurrency, default 100 like fluid's
io-worker) and BENCH_POLL_INTERVAL (peers' poll periods, default 1 ms) reach every driver.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = ROOT / "bench" / "peers"
VENVS = ROOT / ".bench"
LOGS = VENVS / "logs"
PLOT = Path(os.environ.get("BENCH_PLOT", str(ROOT / "docs" / "bench-peers.png")))
TIMEOUT = float(os.environ.get("BENCH_SYSTEM_TIMEOUT", "1800"))


@dataclass
class System:
    name: str
    command: list[str]
    venv: str | None = None  # the peer whose .bench/<venv> must exist
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    load: str = ""


def systems() -> list[System]:
    def peer(name: str, directory: str, *args: str) -> System:
        python = VENVS / directory / "bin" / "python"
        script = PEERS_DIR / directory / "run_bench.py"
        return System(name, [str(python), str(script), *args], venv=directory)

    def fluid(history: str) -> System:
        script = str(ROOT / "bench" / "fluid_bench.py")
        return System(
            f"fluid ({history})", ["env", f"BENCH_HISTORY={history}", sys.executable, script]
        )

    every = [
        fluid("sqlite"),
        fluid("postgresql"),
        peer("aio-fluid", "aio-fluid"),
        peer("saq", "saq"),
        peer("taskiq (list)", "taskiq", "list"),
        peer("taskiq (stream)", "taskiq", "stream"),
        peer("arq", "arq"),
        peer("dramatiq", "dramatiq"),
    ]
    wanted = os.environ.get("BENCH_PEERS", "").strip()
    if not wanted:
        return every
    names = {name.strip() for name in wanted.split(",")}
    return [s for s in every if s.venv is None or s.name in names or s.venv in names]


def last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            return parsed
    return None


def last_error_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def run(system: System) -> None:
    if system.venv is not None and not Path(system.command[0]).exists():
        system.error = f".bench/{system.venv} is missing: run `make bench-peers`"
        return
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{system.name.replace(' ', '').replace('(', '-').replace(')', '')}.log"
    system.load = f"{os.getloadavg()[0]:.1f}"
    print(f"[{time.strftime('%H:%M:%S')}] {system.name} ... (load {system.load})", flush=True)
    started = time.monotonic()
    with log.open("w") as stderr:
        try:
            done = subprocess.run(
                system.command,
                cwd=ROOT,
                env={**os.environ, "BENCH_JSON": "1"},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            system.error = f"timed out after {TIMEOUT:.0f} s (log: {log.relative_to(ROOT)})"
            return
    result = last_json_line(done.stdout)
    if done.returncode != 0 or result is None:
        reason = last_error_line(log)
        system.error = f"exit {done.returncode}: {reason} (log: {log.relative_to(ROOT)})"
        return
    system.result = result
    print(f"  done in {time.monotonic() - started:.0f} s", flush=True)


def number(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


BASELINE = "fluid (sqlite)"  # the ratios are this system's figure over each other's


def ratio(mine: Any, theirs: Any) -> str:
    return f"{mine / theirs:.2f}x" if mine and theirs else "n/a"


def rows(all_systems: list[System]) -> tuple[list[str], list[list[str]]]:
    header = [
        "system",
        "enqueue 1/call /s",
        "enqueue bulk /s",
        "drain /s",
        "p50 ms",
        "p99 ms",
        "enqueue fluid/x",
        "drain fluid/x",
        "p50 fluid/x",
    ]
    fluid = next((s.result for s in all_systems if s.name == BASELINE), {})
    table = []
    for system in all_systems:
        figures = system.result
        if not figures:
            table.append([system.name, *["n/a"] * (len(header) - 1)])
            continue
        bulk = figures.get("enqueue_bulk_per_s")
        ratios = ["-", "-", "-"]
        if system.name != BASELINE:
            ratios = [
                ratio(fluid.get(key), figures.get(key))
                for key in ("enqueue_single_per_s", "drain_per_s", "p50_ms")
            ]
        table.append(
            [
                system.name,
                number(figures.get("enqueue_single_per_s"), 0),
                number(bulk, 0) if bulk is not None else "n/a (no API)",
                number(figures.get("drain_per_s"), 0),
                number(figures.get("p50_ms"), 2),
                number(figures.get("p99_ms"), 2),
                *ratios,
            ]
        )
    return header, table


def notes(all_systems: list[System]) -> list[str]:
    out = []
    for system in all_systems:
        figures = system.result
        if system.error:
            out.append(f"{system.name}: n/a - {system.error}")
            continue
        if system.venv is None:
            out.append(
                f"{system.name}: full gRPC path (client -> dispatcher -> 1 io-worker -> history), "
                f"{figures.get('enqueue_concurrent_per_s', 0):,.0f} calls/s with every queue() "
                "call at once (coalesced), "
                f"history ingest lag {figures.get('history_lag_s', 0):.2f} s after the drain, "
                f"dispatcher RSS {figures.get('dispatcher_rss_mb', 0):.1f} MB; "
                f"load before {system.load}"
            )
            continue
        out.append(
            f"{system.name} {figures.get('version', '')} (Python {figures.get('python', '?')}): "
            f"{figures.get('config', '')}; bulk: {figures.get('bulk_api', '')}; "
            f"wait: {figures.get('wait_api', '')}; load before {system.load}"
        )
    return out


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()}"
    )


def plot(all_systems: list[System], title: str, path: Path) -> None:
    """Three bar charts side by side (enqueue, drain, round trip) of the systems that ran."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the plot is a file
    import matplotlib.pyplot as plt

    ran = [s for s in all_systems if s.result]
    names = [s.name for s in ran]
    colours = ["tab:blue" if s.venv is None else "tab:gray" for s in ran]
    figure, axes = plt.subplots(1, 3, figsize=(15, 5.5))
    panels = (
        ("single enqueue, calls/s (higher is better)", "enqueue_single_per_s"),
        ("drain by one worker, runs/s (higher is better)", "drain_per_s"),
        ("round trip p50 / p99, ms (lower is better)", "p50_ms"),
    )
    for axis, (label, key) in zip(axes, panels, strict=True):
        values = [float(s.result.get(key) or 0) for s in ran]
        bars = axis.barh(names, values, color=colours)
        if key == "p50_ms":
            tails = [float(s.result.get("p99_ms") or 0) for s in ran]
            axis.barh(
                names,
                [t - v for t, v in zip(tails, values, strict=True)],
                left=values,
                color=colours,
                alpha=0.35,
            )
            axis.bar_label(
                bars,
                labels=[f"{v:.2f} / {t:.2f}" for v, t in zip(values, tails, strict=True)],
                padding=3,
                fontsize=8,
            )
        else:
            axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
        axis.set_title(label, fontsize=10)
        axis.invert_yaxis()
        axis.margins(x=0.3)
    figure.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_table(header: list[str], table: list[list[str]], title: str, plain: bool) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        plain = True
    if plain:
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        print(title)
        for row in [header, ["-" * w for w in widths], *table]:
            print(
                "  ".join(
                    cell.rjust(w) if i else cell.ljust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        return
    rich_table = Table(title=title)
    for i, name in enumerate(header):
        rich_table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in table:
        rich_table.add_row(*row)
    width = max(120, shutil.get_terminal_size((120, 24)).columns)
    Console(width=width).print(rich_table)


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "5000"))
    round_trips = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))
    os.environ["BENCH_RUNS"] = str(runs)
    os.environ["BENCH_ROUND_TRIPS"] = str(round_trips)
    chosen = systems()
    for system in chosen:
        run(system)
    header, table = rows(chosen)
    title = (
        f"fluid vs peers, {time.strftime('%Y-%m-%d')}: {runs:,} no-op runs queued one call "
        f"at a time, then drained by one worker process, {round_trips} sequential round "
        f"trips; local Redis; {machine()}"
    )
    print()
    print_table(header, table, title, plain=os.environ.get("BENCH_PLAIN") == "1")
    print(
        f"ratios are {BASELINE} over each system: enqueue and drain above 1, "
        "p50 below 1 mean fluid is faster"
    )
    for line in notes(chosen):
        print(f"- {line}")
    VENVS.mkdir(exist_ok=True)
    (VENVS / "peers-last.json").write_text(
        json.dumps([{"system": s.name, "error": s.error, **s.result} for s in chosen], indent=2)
    )
    if not any(s.result for s in chosen):
        sys.exit(1)
    plot(chosen, title, PLOT)
    print(f"plot: {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
