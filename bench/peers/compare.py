"""`make bench-peers`: fluid and its peers on the same workloads, same Redis, same run.

Runs bench/fluid_bench.py (BENCH_JSON=1) with the project's interpreter, then each peer's
bench/peers/<peer>/run_bench.py with that peer's own interpreter (.bench/<peer>/bin/python,
made by bench/peers/make_venv.sh), one after the other, and prints one table: enqueue rate,
no-op throughput for BENCH_RUNS runs, round-trip p50/p99 over BENCH_ROUND_TRIPS sequential
enqueue-and-wait calls, and fluid's ratio to each peer. A system that fails shows "n/a" and
why. BENCH_PEERS=saq,arq picks systems (fluid is always run: the ratios need it). Each
system's stderr goes to .bench/logs/<system>.log; all figures to .bench/peers-last.json.
BENCH_PLAIN=1 prints a plain-text table instead of a rich one. BENCH_RUNS, BENCH_ROUND_TRIPS,
BENCH_WORKER_CONCURRENCY (peers' worker concurrency, default 100 like fluid's io-worker) and
BENCH_POLL_INTERVAL (peers' poll periods, default 1 ms) reach every driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = ROOT / "bench" / "peers"
VENVS = ROOT / ".bench"
LOGS = VENVS / "logs"
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

    every = [
        System("fluid", [sys.executable, str(ROOT / "bench" / "fluid_bench.py")]),
        peer("aio-fluid", "aio-fluid"),
        peer("saq", "saq"),
        peer("taskiq (list)", "taskiq", "list"),
        peer("taskiq (stream)", "taskiq", "stream"),
        peer("arq", "arq"),
    ]
    wanted = os.environ.get("BENCH_PEERS", "").strip()
    if not wanted:
        return every
    names = {name.strip() for name in wanted.split(",")}
    return [s for s in every if s.name == "fluid" or s.name in names or s.venv in names]


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


def rows(all_systems: list[System]) -> tuple[list[str], list[list[str]]]:
    header = [
        "system",
        "enqueue 1/call /s",
        "enqueue bulk /s",
        "throughput /s",
        "p50 ms",
        "p99 ms",
        "thr fluid/peer",
        "p50 fluid/peer",
    ]
    fluid = next((s.result for s in all_systems if s.name == "fluid"), {})
    table = []
    for system in all_systems:
        figures = system.result
        if not figures:
            table.append([system.name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        bulk = figures.get("enqueue_bulk_per_s")
        thr_ratio = p50_ratio = "-"
        if system.name != "fluid":
            thr_ratio = p50_ratio = "n/a"
            if fluid.get("throughput_per_s") and figures.get("throughput_per_s"):
                thr_ratio = f"{fluid['throughput_per_s'] / figures['throughput_per_s']:.2f}x"
            if fluid.get("p50_ms") and figures.get("p50_ms"):
                p50_ratio = f"{fluid['p50_ms'] / figures['p50_ms']:.2f}x"
        table.append(
            [
                system.name,
                number(figures.get("enqueue_single_per_s"), 0),
                number(bulk, 0) if bulk is not None else "n/a (no API)",
                number(figures.get("throughput_per_s"), 0),
                number(figures.get("p50_ms"), 2),
                number(figures.get("p99_ms"), 2),
                thr_ratio,
                p50_ratio,
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
        if system.name == "fluid":
            out.append(
                "fluid: full gRPC path (client -> dispatcher -> 1 io-worker -> history), "
                "throughput measured on the bulk (queue_many) enqueue; "
                f"dispatcher RSS {figures.get('dispatcher_rss_mb', 0):.1f} MB; "
                f"load before {system.load}"
            )
            continue
        extra = ""
        if "queue_and_wait_p50_ms" in figures:
            extra = (
                f"; queue_and_wait p50/p99 {figures['queue_and_wait_p50_ms']:.2f}/"
                f"{figures['queue_and_wait_p99_ms']:.2f} ms"
            )
        out.append(
            f"{system.name} {figures.get('version', '')} (Python {figures.get('python', '?')}): "
            f"{figures.get('config', '')}; bulk: {figures.get('bulk_api', '')}; "
            f"wait: {figures.get('wait_api', '')}; "
            f"enqueue of the {figures.get('runs')} runs {figures.get('enqueue_runs_per_s', 0):,.0f}"
            f"/s{extra}; load before {system.load}"
        )
    return out


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
    runs = int(os.environ.get("BENCH_RUNS", "10000"))
    round_trips = int(os.environ.get("BENCH_ROUND_TRIPS", "500"))
    os.environ["BENCH_RUNS"] = str(runs)
    os.environ["BENCH_ROUND_TRIPS"] = str(round_trips)
    chosen = systems()
    for system in chosen:
        run(system)
    header, table = rows(chosen)
    title = (
        f"fluid vs peers: {runs:,} no-op runs, {round_trips} round trips, one worker process, "
        f"Redis 127.0.0.1:6379, {os.cpu_count()} cores"
    )
    print()
    print_table(header, table, title, plain=os.environ.get("BENCH_PLAIN") == "1")
    print("fluid/peer ratios: throughput above 1 and p50 below 1 mean fluid is faster")
    for line in notes(chosen):
        print(f"- {line}")
    VENVS.mkdir(exist_ok=True)
    (VENVS / "peers-last.json").write_text(
        json.dumps([{"system": s.name, "error": s.error, **s.result} for s in chosen], indent=2)
    )
    if not any(s.result for s in chosen):
        sys.exit(1)


if __name__ == "__main__":
    main()
