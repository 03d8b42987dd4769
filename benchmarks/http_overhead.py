"""What surefoot's request path costs per request, next to what teams assemble today.

In-process part: every app is driven by calling it as an ASGI callable (no sockets), in
interleaved rounds timed in process CPU time (so other processes on a shared machine do
not count), and the median µs per request is reported for

* bare Starlette and bare FastAPI (the baselines);
* surefoot wired as the README says, ``surefoot.install(app)``: ids, RED metrics in the
  app's own registry, error envelope, probe and /metrics routes, logging (JSON, INFO, PII
  redaction), every line fully rendered and written to /dev/null; also without the access
  log (``install(app, access_log=False)``), to show its share;
* the typical stack: prometheus-fastapi-instrumentator + asgi-correlation-id + a structlog
  access-log middleware (pure ASGI, and as ``@app.middleware("http")``) whose lines go
  through the same logging configuration;

each with 1 route and with 200 routes (the request hits the last one). Overheads are
computed per round against the bare app of the same round; the ratio column is surefoot's
overhead divided by the typical stack's.

End-to-end part (``--e2e``): each variant, on Starlette and on FastAPI, served by uvicorn
(one worker) on a loopback port, loaded by ``wrk`` for a bounded time; requests per second.

    PYTHONPATH=src python benchmarks/http_overhead.py            # in-process tables
    PYTHONPATH=src python benchmarks/http_overhead.py --e2e      # plus uvicorn + wrk
    PYTHONPATH=src python benchmarks/http_overhead.py --tracing  # tracing vs contrib vs FastAPI telemetry
    PYTHONPATH=src python benchmarks/http_overhead.py --cold-start   # process start and memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import structlog  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from _bench import amedian_rounds, fmt, table  # noqa: E402

FRAMEWORKS = ("starlette", "fastapi")
STACKS = ("bare", "surefoot", "surefoot_nolog", "typical", "typical_bhm")
E2E_STACKS = ("bare", "surefoot", "typical")
ROUTE_COUNTS = (1, 200)


# -- logging: surefoot's own configuration, for surefoot and the typical stack alike ---------


_DEVNULL: Any = None


def _devnull() -> Any:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives for the whole run
    return _DEVNULL


def production_env() -> None:
    """What a production deployment sets: ``SUREFOOT_ENV=production`` (JSON logs)."""
    os.environ["SUREFOOT_ENV"] = "production"
    from surefoot._core.state import reset_config

    reset_config()


def configure_logs() -> str:
    """Configure logging as ``surefoot.install`` does: JSON lines (rendered, redacted) to /dev/null.

    The typical stack's structlog access log goes through the same pipeline, so both pay for
    the same fields, redaction and rendering.
    """
    from surefoot._core.settings import Settings
    from surefoot.logging import configure_logging

    configure_logging(Settings(env="production"), stream=_devnull(), fmt="json", level="INFO")
    return "surefoot.logging.configure_logging (JSON, INFO, redaction) to /dev/null"


# -- apps ------------------------------------------------------------------------------------


def build(framework: str, stack: str, n_routes: int) -> tuple[Any, str]:
    """Return (asgi app, path of the last route)."""
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def endpoint(request: Any) -> Any:
            return JSONResponse({"id": request.path_params["item_id"]})

        app: Any = Starlette(
            routes=[Route(f"/r{i}/items/{{item_id:int}}", endpoint) for i in range(n_routes)]
        )
    else:
        from fastapi import FastAPI

        app = FastAPI()  # as users create it: the docs routes are in the router too
        for i in range(n_routes):
            async def endpoint(item_id: int) -> dict[str, int]:
                return {"id": item_id}

            app.get(f"/r{i}/items/{{item_id}}")(endpoint)
    path = f"/r{n_routes - 1}/items/42"
    if stack in ("surefoot", "surefoot_nolog"):
        # Wired the way the README tells users: surefoot.install(app), which also adds the
        # probe and /metrics routes and configures logging from the environment
        # (SUREFOOT_ENV=production: JSON, INFO, redaction) to standard output, which the
        # benchmark points at /dev/null (a file, as a pipe to a log shipper is: buffered).
        import surefoot

        surefoot.install(app, access_log=stack == "surefoot")
    elif stack in ("typical", "typical_bhm"):
        from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=CollectorRegistry()).instrument(app)
        access = structlog.get_logger("access")
        if stack == "typical":
            app.add_middleware(_AccessLog, logger=access, request_id=correlation_id)
        else:
            async def access_log(request: Any, call_next: Any) -> Any:
                # the FastAPI documentation's way: @app.middleware("http")
                structlog.contextvars.bind_contextvars(request_id=correlation_id.get())
                start = time.perf_counter()
                response = await call_next(request)
                access.info(
                    "http_request",
                    method=request.method,
                    path=request.url.path,
                    status=response.status_code,
                    latency_ms=round((time.perf_counter() - start) * 1000, 3),
                )
                return response

            from starlette.middleware.base import BaseHTTPMiddleware

            app.add_middleware(BaseHTTPMiddleware, dispatch=access_log)
        app.add_middleware(CorrelationIdMiddleware)
    return app, path


class _AccessLog:
    """A structlog access-log middleware as teams write it (pure ASGI, the fast way)."""

    def __init__(self, app: Any, logger: Any, request_id: Any) -> None:
        self.app = app
        self.logger = logger
        self.request_id = request_id

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.bind_contextvars(request_id=self.request_id.get())
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.logger.info(
                "http_request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                latency_ms=round((time.perf_counter() - start) * 1000, 3),
            )


def driver(app: Any, path: str) -> Any:
    headers = [(b"host", b"bench"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    base = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []
    server_context = contextvars.Context()

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run(n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            delivered = False
            never = loop.create_future()

            async def receive() -> Any:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return request
                return await never  # noqa: B023 - the client stays connected; runs within this iteration

            scope = dict(base)
            scope["headers"] = list(headers)
            scope["state"] = {}
            # Like uvicorn: one task per request, in a fresh copy of the server's context, so
            # context variables bound by one request (or one variant) never leak into another.
            await loop.create_task(app(scope, receive, send), context=server_context.copy())
        if statuses and statuses[-1] != 200:
            raise SystemExit(f"benchmark app answered {statuses[-1]} on {path}")
        statuses.clear()

    return run


async def lifespan_start(app: Any) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    done = asyncio.Event()

    async def receive() -> Any:
        if done.is_set():
            await asyncio.Event().wait()
        return await queue.get()

    async def send(message: Any) -> None:
        done.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    await done.wait()
    task.cancel()


async def in_process(rounds: int, n: int) -> None:
    # Standard output (where surefoot.install's logs go) is /dev/null while apps are built and
    # driven; the tables go to the real one.
    out = sys.stdout
    sys.stdout = _devnull()
    try:
        await _in_process(rounds, n, out)
    finally:
        sys.stdout = out


async def _in_process(rounds: int, n: int, out: Any) -> None:
    def say(*args: Any) -> None:
        print(*args, file=out)

    variants = {}
    for framework in FRAMEWORKS:
        for routes in ROUTE_COUNTS:
            for stack in STACKS:
                app, path = build(framework, stack, routes)
                run = driver(app, path)
                await run(200)  # warm-up: builds middleware stacks, caches label children
                variants[(framework, routes, stack)] = run
    names = {f"{k[0]}/{k[1]}/{k[2]}": fn for k, fn in variants.items()}
    samples = await amedian_rounds(names, rounds=rounds, n=n)

    def series(framework: str, routes: int, stack: str) -> list[float]:
        return samples[f"{framework}/{routes}/{stack}"]

    rows = []
    overhead_by: dict[tuple[str, int], float] = {}
    for framework in FRAMEWORKS:
        for routes in ROUTE_COUNTS:
            bare = series(framework, routes, "bare")
            over = {
                stack: [v - b for v, b in zip(series(framework, routes, stack), bare, strict=False)]
                for stack in STACKS[1:]
            }
            ratio = [s / t for s, t in zip(over["surefoot"], over["typical"], strict=False) if t > 0]
            overhead_by[(framework, routes)] = statistics.median(over["surefoot"])
            rows.append([
                framework, routes, fmt(statistics.median(bare)),
                *("+" + fmt(statistics.median(over[stack])) for stack in STACKS[1:]),
                fmt(statistics.median(ratio), 2) + "x" if ratio else "n/a",
            ])
    say(table(
        ["framework", "routes", "bare µs/req", "surefoot +µs", "surefoot w/o access log +µs", "typical +µs",
         "typical @middleware +µs", "surefoot / typical"],
        rows,
    ))
    say("\ntypical = prometheus-fastapi-instrumentator + asgi-correlation-id + a pure-ASGI structlog "
          "access log;\ntypical @middleware = the same with the access log as @app.middleware('http') "
          "(BaseHTTPMiddleware).")
    say()
    checks = []
    for framework in FRAMEWORKS:
        one, many = overhead_by[(framework, 1)], overhead_by[(framework, 200)]
        best = {
            routes: min(series(framework, routes, "surefoot")) - min(series(framework, routes, "bare"))
            for routes in ROUTE_COUNTS
        }
        checks.append([
            framework, "+" + fmt(one), "+" + fmt(many), fmt((many / one - 1) * 100 if one else 0) + " %",
            "+" + fmt(best[1]), "+" + fmt(best[200]),
        ])
    say(table(["framework", "surefoot @1 route", "@200 routes", "change", "best round @1", "best round @200"],
                checks))
    # Time at 200 routes also carries the cache pressure of the framework's 200-regex routing
    # loop; the work surefoot does is shown by the function calls it adds, which must not
    # depend on the number of routes (no re-matching).
    added = {}
    for routes in ROUTE_COUNTS:
        calls = {}
        for stack in ("bare", "surefoot"):
            app, path = build("starlette", stack, routes)
            run = driver(app, path)
            await run(50)
            profiler = cProfile.Profile()
            profiler.enable()
            await run(200)
            profiler.disable()
            calls[stack] = pstats.Stats(profiler).total_calls / 200
        added[routes] = calls["surefoot"] - calls["bare"]
    say(f"\nfunction calls surefoot adds per request (Starlette): {added[1]:.1f} at 1 route, "
          f"{added[200]:.1f} at 200 routes")
    say()
    for framework, goal in (("starlette", 8), ("fastapi", 10)):
        target = overhead_by[(framework, 1)]
        say(f"target: surefoot.install adds <= {goal} µs/request on bare {framework} -> measured "
              f"+{fmt(target)} µs median ({'met' if target <= goal else 'NOT met'}); at 200 routes "
              f"{fmt((overhead_by[(framework, 200)] / target - 1) * 100 if target else 0)} % more")


# -- end to end ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(stack: str, port: int, framework: str) -> None:
    import uvicorn

    from surefoot.logging import configure_logging

    # Every variant logs to standard output (a pipe): surefoot.install configures it again.
    configure_logging(fmt="json", level="INFO")
    app, _path = build(framework, stack, 1)
    # As users run it: uvicorn's defaults (lifespan on: surefoot's start-up and shutdown run).
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, connections: int) -> tuple[float, int]:
    """Run wrk; return (requests per second, requests completed)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise SystemExit("could not read wrk output:\n" + out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise SystemExit(f"{url} answered {non2xx.group(1)} non-2xx responses")
    return float(rps.group(1)), int(total.group(1))


def _drain(pipe: Any) -> None:
    while pipe.read(1 << 16):
        pass


def end_to_end(runs: int, seconds: int, connections: int) -> None:
    if shutil.which("wrk") is None:
        print("wrk not found: skipping the end-to-end run (apt-get install -y wrk)")
        return
    keys = [(framework, stack) for framework in FRAMEWORKS for stack in E2E_STACKS]
    rps: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    cpu_us: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    for _ in range(runs):
        for framework, stack in keys:
            port = free_port()
            # The server's standard output (its log lines) is a pipe drained by this process, as
            # a container runtime or log shipper drains it.
            proc = subprocess.Popen([sys.executable, __file__, "--serve", stack, "--framework", framework,
                                     "--port", str(port)], env=env, stdout=subprocess.PIPE)
            drain = threading.Thread(target=_drain, args=(proc.stdout,), daemon=True)
            drain.start()
            url = f"http://127.0.0.1:{port}/r0/items/42"
            try:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                            break
                    except OSError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise SystemExit(f"{framework}/{stack} server did not start") from None
                        time.sleep(0.1)
                wrk(url, 1, connections)  # warm-up
                before = cpu_seconds(proc.pid)
                rate, total = wrk(url, seconds, connections)
                cpu_us[(framework, stack)].append((cpu_seconds(proc.pid) - before) * 1e6 / total)
                rps[(framework, stack)].append(rate)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
                drain.join(timeout=20)
    rows = []
    paired_by: dict[str, float] = {}
    for framework in FRAMEWORKS:
        bare = (framework, "bare")
        bare_rps = max(rps[bare])
        bare_cpu = statistics.median(cpu_us[bare])
        for stack in E2E_STACKS:
            key = (framework, stack)
            paired = statistics.median(v / b for v, b in zip(rps[key], rps[bare], strict=False))
            if stack == "surefoot":
                paired_by[framework] = paired
            rows.append([
                framework, stack, fmt(max(rps[key]), 0), fmt(max(rps[key]) / bare_rps, 2) + "x",
                fmt(paired, 2) + "x", fmt(statistics.median(cpu_us[key])),
                fmt(bare_cpu / statistics.median(cpu_us[key]), 2) + "x",
                ", ".join(fmt(v, 0) for v in rps[key]),
            ])
    print(table(["framework + uvicorn", "stack", "best req/s", "best vs best bare", "median of paired runs",
                 "server CPU µs/req (median)", "capacity vs bare", "req/s of every run"], rows))
    for framework, goal in (("starlette", 0.8), ("fastapi", 0.9)):
        print(f"target: surefoot throughput >= {goal}x bare {framework} -> {paired_by[framework]:.2f}x median "
              f"of paired runs ({'met' if paired_by[framework] >= goal else 'NOT met'})")


# -- cold start ------------------------------------------------------------------------------

# What a service process does before it serves: import the app module (FastAPI, one route,
# ``surefoot.install(app)`` with default settings), then what the server does, run the
# lifespan start-up through the app (this builds the middleware stack), serve one request
# and shut down. Both variants run the same driver; stdout is not a TTY, so logs are JSON.
_COLD_APP = """\
from fastapi import FastAPI
{import_surefoot}
app = FastAPI()


@app.get("/items/{{item_id}}")
async def read_item(item_id: int) -> dict[str, int]:
    return {{"item_id": item_id}}

{install}
"""

_COLD_SERVE = """
import asyncio


async def _serve_once(app):
    inbox = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith(".failed"):
            raise SystemExit(message)

    inbox.put_nowait({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, lifespan_send)
    )
    await started.wait()
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/items/7", "raw_path": b"/items/7", "root_path": "",
        "query_string": b"", "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 40000),
        "server": ("localhost", 8000), "state": {},
    }
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"unexpected response {sent[0]!r}")
    inbox.put_nowait({"type": "lifespan.shutdown"})
    await lifespan


asyncio.run(_serve_once(app))

# The peak resident memory of this program alone: the rusage figure the parent gets also counts
# the parent's own memory before exec (Linux carries the high-water mark across exec).
import sys

try:
    with open("/proc/self/status") as _status:
        for _line in _status:
            if _line.startswith("VmHWM:"):
                print("peak-kib", _line.split()[1], file=sys.stderr)
except OSError:
    pass
"""

COLD = {
    "bare FastAPI": _COLD_APP.format(import_surefoot="", install="") + _COLD_SERVE,
    "FastAPI + surefoot.install": (
        _COLD_APP.format(import_surefoot="import surefoot", install="surefoot.install(app)")
        + _COLD_SERVE
    ),
}


def _run_process(code: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one ``python -c`` process.

    CPU time is the figure to compare on a shared machine: waiting for a core counts in the
    wall time, not in the CPU time.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"cold-start process failed: {code!r}\n" + "\n".join(lines))
    # The process's own high-water mark (VmHWM) where the system reports it; ru_maxrss would
    # never be below this benchmark's own memory (the parent's, at fork).
    peaks = [int(line.split()[1]) for line in lines if line.startswith("peak-kib ")]
    peak_mib = peaks[-1] / 1024 if peaks else usage.ru_maxrss / 1024
    return wall, usage.ru_utime + usage.ru_stime, peak_mib


def cold_start(runs: int) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.pop("SUREFOOT_LOG_FORMAT", None)
    # Bytecode as an installed package has it (pip compiles at install): compiled once into a
    # private cache by a warm-up run of each variant, then read by every measured run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="surefoot-bench-pyc-")
    for code in COLD.values():
        _run_process(code, env)
    walls: dict[str, list[float]] = {name: [] for name in COLD}
    cpus: dict[str, list[float]] = {name: [] for name in COLD}
    rss: dict[str, list[float]] = {name: [] for name in COLD}
    for _ in range(runs):
        for name, code in COLD.items():
            wall, cpu, peak = _run_process(code, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            rss[name].append(peak)
    bare = "bare FastAPI"
    sure = "FastAPI + surefoot.install"
    med = statistics.median
    rows = []
    for name in COLD:
        rows.append([
            name, fmt(med(cpus[name]) * 1000, 0), fmt(min(cpus[name]) * 1000, 0), fmt(med(walls[name]) * 1000, 0),
            fmt(med(rss[name]), 1), "+" + fmt((med(cpus[name]) - med(cpus[bare])) * 1000, 0),
            "+" + fmt(med(rss[name]) - med(rss[bare]), 1),
        ])
    print(table(["whole process", "CPU ms (median)", "CPU ms (best)", "wall ms (median)", "peak RSS MiB",
                 "+CPU ms vs bare", "+MiB vs bare"], rows))
    added_ms = (med(cpus[sure]) - med(cpus[bare])) * 1000
    added_mib = med(rss[sure]) - med(rss[bare])
    print(f"\ntarget: import surefoot + install adds <= 50 ms and <= 5 MiB -> +{added_ms:.0f} ms CPU "
          f"({'met' if added_ms <= 50 else 'NOT met'}), +{added_mib:.1f} MiB "
          f"({'met' if added_mib <= 5 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("-n", type=int, default=500, help="requests per variant per round")
    parser.add_argument("--e2e", action="store_true", help="also run uvicorn + wrk")
    parser.add_argument("--e2e-only", action="store_true")
    parser.add_argument("--e2e-runs", type=int, default=7)
    parser.add_argument("--e2e-seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--cold-start", action="store_true",
                        help="only measure whole-process start: bare FastAPI vs + surefoot.install")
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--serve", choices=E2E_STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tracing", action="store_true",
                        help="only the tracing comparison (surefoot, contrib, FastAPI telemetry)")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="starlette", help=argparse.SUPPRESS)
    args = parser.parse_args()
    production_env()
    if args.tracing:  # the tracing comparison lives in _tracing_overhead.py
        import _tracing_overhead

        print(f"python {sys.version.split()[0]}; logs: {configure_logs()}")
        print(f"in-process ASGI calls, CPU µs per request, median of {args.rounds} interleaved rounds "
              f"x {args.n} requests; batch span processor, exporter dropping every span\n")
        asyncio.run(_tracing_overhead.run(args.rounds, args.n, driver))
        return
    if args.serve:
        serve(args.serve, args.port, args.framework)
        return
    if args.cold_start:
        print(f"python {sys.version.split()[0]}; whole processes, {args.cold_runs} interleaved runs each\n")
        cold_start(args.cold_runs)
        return
    print(f"python {sys.version.split()[0]}; logs: {configure_logs()}")
    if not args.e2e_only:
        print(f"in-process ASGI calls, CPU µs per request, median of {args.rounds} interleaved rounds "
              f"x {args.n} requests\n")
        asyncio.run(in_process(args.rounds, args.n))
    if args.e2e or args.e2e_only:
        print(f"\nend to end: uvicorn (1 worker) + wrk -t1 -c{args.connections} -d{args.e2e_seconds}s, "
              f"{args.e2e_runs} runs per variant, interleaved\n")
        end_to_end(args.e2e_runs, args.e2e_seconds, args.connections)


if __name__ == "__main__":
    main()
