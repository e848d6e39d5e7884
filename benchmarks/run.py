"""speckle-nb benchmarks: ``python benchmarks/run.py`` (about a minute; see README.md).

Starts the dev server in a child process on loopback (so the server's CPU work does not share
this process's GIL with the clients being measured), runs every function in ``BENCHMARKS``
side by side, and prints medians, ratios and PASS/MISS per target. The exit status is 0 even
when a target is missed: a benchmark reports, it does not gate.

To add a section, write ``def bench_x(ctx: Context) -> Section`` and append it to
``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# The query specklepy's `active_user.get()` sends (protocol §7.3): every contender sends
# exactly this text, so the server does the same work for each.
ACTIVE_USER = "query User { data:activeUser { id email name bio company avatar verified role } }"
SCOPES = ["streams:read", "profile:read", "profile:email", "users:read"]
PROJECT_COUNT = 200


# --------------------------------------------------------------------------- report types


@dataclass
class Row:
    """One measured contender: its median and what the median is of."""

    label: str
    median: float  # seconds
    unit: str  # what one `median` is: "per query", "per 50", "per run"
    note: str = ""


@dataclass
class Target:
    """A ratio with its goal. ``higher`` says whether bigger is better."""

    label: str
    ratio: float
    goal: float
    higher: bool = True

    @property
    def ok(self) -> bool:
        return self.ratio >= self.goal if self.higher else self.ratio <= self.goal

    def line(self) -> str:
        sign = "≥" if self.higher else "≤"
        verdict = "PASS" if self.ok else "MISS"
        return f"  {verdict}  {self.label}: {self.ratio:.2f}× (target {sign} {self.goal:g}×)"


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    ratios: list[tuple[str, float]] = field(default_factory=list)  # informative, no goal
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What every benchmark gets: the running dev server and a way to flip its switches."""

    url: str
    token: str
    control: Callable[[str], None]  # "latency on" / "latency off"
    many: str = ""  # a token of a user with PROJECT_COUNT projects
    quick: bool = False


# --------------------------------------------------------------------------- the dev server


def serve() -> None:
    """Child mode: run the dev server; print ``{"url", "token"}``; obey stdin; exit on EOF."""
    from speckle_nb.devserver import DevOptions, DevServer

    with DevServer(options=DevOptions(latency=False)).running() as dev:
        token = dev.state.create_token(dev.demo_user.id, scopes=SCOPES)
        owner = dev.state.add_user("many@example.org", "pw", "Many Projects")
        for i in range(PROJECT_COUNT):
            dev.state.add_project(owner.id, f"project {i:03d}", created_ms=1_767_225_600_000 + i)
        many = dev.state.create_token(owner.id, scopes=SCOPES)
        print(json.dumps({"url": dev.url, "token": token, "many": many}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command in ("latency on", "latency off"):
                dev.options.latency = command == "latency on"
            print("ok", flush=True)


class ServerProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the dev server did not start (see its error above)")
        hello = json.loads(line)
        self.url: str = hello["url"]
        self.token: str = hello["token"]
        self.many: str = hello["many"]

    def control(self, command: str) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- helpers


class Rounds:
    """Per-round samples of each contender, all measured in the same rounds."""

    def __init__(self, samples: dict[str, list[float]]) -> None:
        self.samples = samples

    def __getitem__(self, name: str) -> float:
        """The median of ``name``'s samples."""
        return statistics.median(self.samples[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """The median of the per-round ratios: each pair shared a round, and so its noise."""
        pairs = zip(self.samples[numerator], self.samples[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)


def median_of_rounds(contenders: dict[str, Callable[[], float]], rounds: int) -> Rounds:
    """Run each contender once per round, rotating who goes first.

    Interleaving puts every contender under the same machine noise (2 shared cores); ratios
    are then taken round by round (``Rounds.ratio``).
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(contenders[name]())
    return Rounds(samples)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- benchmarks


def bench_active_user(ctx: Context) -> Section:
    """The same activeUser query N times: raw httpx (the floor), ours sync/async, specklepy;
    with the dev server's latency OFF (client overhead shows most), then ON (as a real server)."""
    from speckle_nb.graphql import AsyncSpeckleClient, SpeckleClient

    concurrency = 8
    section = Section(
        "activeUser, median time per query; latency OFF = loopback, no simulated work; "
        "latency ON = the real server's ≈72 ms per authenticated request"
    )
    headers = {"Authorization": f"Bearer {ctx.token}", "Content-Type": "application/json"}
    endpoint = f"{ctx.url}/graphql"
    payload = {"query": ACTIVE_USER}
    raw = httpx.Client(headers=headers)
    ours = SpeckleClient(ctx.url, ctx.token)
    specklepy = _specklepy_client(ctx)
    if specklepy is None:
        section.notes.append("specklepy is not installed: its rows and targets are skipped.")
    floor = "raw httpx.Client, keep-alive (floor)"
    sync = "speckle_nb SpeckleClient"
    concurrent = f"speckle_nb AsyncSpeckleClient, {concurrency} concurrent (coalesced)"
    slow = "specklepy SpeckleClient (active_user.get)"

    def contenders(n: int) -> dict[str, Callable[[], float]]:
        def run_raw() -> float:
            def go() -> None:
                for _ in range(n):
                    response = raw.post(endpoint, json=payload)
                    response.raise_for_status()
                    assert response.json()["data"]["data"]["name"]

            return timed(go) / n

        def run_ours() -> float:
            return timed(lambda: [ours.execute(ACTIVE_USER)["data"]["name"] for _ in range(n)]) / n

        async def async_round() -> float:
            # A fresh client per round: an AsyncClient's pool belongs to the loop that made it.
            async with AsyncSpeckleClient(ctx.url, ctx.token) as client:
                await client.execute(ACTIVE_USER)  # open the connection outside the clock
                gate = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with gate:
                        assert (await client.execute(ACTIVE_USER))["data"]["name"]

                start = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                return (time.perf_counter() - start) / n

        found: dict[str, Callable[[], float]] = {
            floor: run_raw,
            sync: run_ours,
            concurrent: lambda: asyncio.run(async_round()),
        }
        if specklepy is not None:

            def run_specklepy() -> float:
                return timed(lambda: [specklepy.active_user.get().name for _ in range(n)]) / n

            found[slow] = run_specklepy
        return found

    # Many short rounds rather than a few long ones: on a shared machine a burst of someone
    # else's work then lands on every contender alike, and the median drops it.
    plans = (
        ("off", 25 if ctx.quick else 40, 5 if ctx.quick else 10),
        ("on", 4 if ctx.quick else 8, 2 if ctx.quick else 3),
    )
    by_latency: dict[str, Rounds] = {}
    try:
        for latency, n, rounds in plans:
            ctx.control(f"latency {latency}")
            raw.post(endpoint, json=payload)  # warm: connections, imports
            ours.execute(ACTIVE_USER)
            by_latency[latency] = median_of_rounds(contenders(n), rounds)
    finally:
        raw.close()
        ours.close()
        ctx.control("latency off")
    off, on = by_latency["off"], by_latency["on"]
    for label in off.samples:
        section.rows.append(
            Row(label, off[label], "per query", f"latency ON: {on[label] * 1000:7.2f} ms")
        )
    # Throughput ratio = time ratio the other way round.
    for latency, medians in (("OFF", off), ("ON", on)):
        section.targets.append(
            Target(
                f"SpeckleClient throughput vs raw httpx, latency {latency}",
                medians.ratio(floor, sync),
                0.9,
            )
        )
    if specklepy is not None:
        section.targets.append(
            Target("SpeckleClient throughput vs specklepy, latency OFF", off.ratio(slow, sync), 2.0)
        )
        section.ratios.append(
            ("SpeckleClient throughput vs specklepy, latency ON", on.ratio(slow, sync))
        )
        section.ratios.append(
            ("AsyncSpeckleClient (coalesced) vs specklepy, latency ON", on.ratio(slow, concurrent))
        )
        # Every contender pays the floor (server + loopback); only the rest is the client's.
        section.notes.append(
            f"latency OFF: specklepy costs {(off[slow] - off[floor]) * 1000:.2f} ms per query "
            f"above the floor of {off[floor] * 1000:.2f} ms. With latency ON the floor is "
            f"{on[floor] * 1000:.1f} ms and one-by-one clients are alike "
            f"({on.ratio(slow, sync):.2f}×): what pays there is fewer requests (coalescing)."
        )
    return section


def _specklepy_client(ctx: Context) -> Any:
    try:
        from specklepy.logging import metrics
    except ImportError:
        return None
    metrics.disable()  # no telemetry from a benchmark
    from speckle_nb.graphql import SpeckleClient

    with SpeckleClient(ctx.url, ctx.token) as ours:
        client = ours.to_specklepy()
    client.active_user.get()  # warm: gql builds its schema-less client lazily
    return client


def bench_batch(ctx: Context) -> Section:
    """50 queries as 50 ``execute`` calls vs one ``execute_many``, without and with latency."""
    from speckle_nb.graphql import SpeckleClient

    section = Section("50 activeUser queries: 50 calls vs one execute_many (one HTTP request)")
    with SpeckleClient(ctx.url, ctx.token) as client:
        ops = [ACTIVE_USER] * 50

        def singles() -> float:
            return timed(lambda: [client.execute(op) for op in ops])

        def batch() -> float:
            return timed(lambda: [r.raise_for_errors() for r in client.execute_many(ops)])

        singles(), batch()  # warm: connection, server-side caches
        for latency, rounds in (("off", 3 if ctx.quick else 5), ("on", 1)):
            ctx.control(f"latency {latency}")
            medians = median_of_rounds({"50 calls": singles, "1 batch": batch}, rounds)
            where = f"latency {latency.upper()}"
            section.rows.append(Row(f"50 × execute, {where}", medians["50 calls"], "per 50"))
            section.rows.append(Row(f"1 × execute_many(50), {where}", medians["1 batch"], "per 50"))
            section.targets.append(
                Target(f"batch vs 50 calls, {where}", medians.ratio("50 calls", "1 batch"), 5.0)
            )
            # 50 calls = 50 × (request + operation); 1 batch = 1 × request + 50 × operation.
            per_request = (medians["50 calls"] - medians["1 batch"]) / 49
            per_op = max(medians["1 batch"] - per_request, 0.0) / 50
            section.notes.append(
                f"{where}: ≈ {per_request * 1000:.2f} ms per HTTP request (what batching saves) "
                f"and ≈ {per_op * 1000:.2f} ms per operation (what it cannot save)."
            )
        ctx.control("latency off")
    section.notes.append(
        "latency ON makes the dev server sleep like the real server's per-request bcrypt token "
        "check (≈72 ms, protocol §13.10): a batch pays it once, 50 calls pay it 50 times."
    )
    return section


def bench_gather(ctx: Context) -> Section:
    """50 awaited ``execute()`` calls one by one vs ``asyncio.gather`` of the same 50
    (coalesced into one request), with coalescing off, and ``execute_many``; latency ON."""
    from speckle_nb.graphql import AsyncSpeckleClient

    n = 50
    queries = [f"query {{ n{i}: activeUser {{ id }} }}" for i in range(n)]

    def contender(kind: str) -> Callable[[], float]:
        async def go() -> float:
            async with AsyncSpeckleClient(ctx.url, ctx.token, coalesce=kind != "apart") as client:
                await client.execute(queries[0])  # open the connection outside the clock
                start = time.perf_counter()
                if kind == "sequential":
                    answers = [await client.execute(q) for q in queries]
                elif kind == "many":
                    answers = [r.raise_for_errors() for r in await client.execute_many(queries)]
                else:
                    answers = list(await asyncio.gather(*(client.execute(q) for q in queries)))
                elapsed = time.perf_counter() - start
            assert [list(a) for a in answers] == [[f"n{i}"] for i in range(n)]
            return elapsed

        return lambda: asyncio.run(go())

    labels = {
        "sequential": f"{n} × await execute(), one after another",
        "gather": f"gather of {n} execute() (coalesced: one request)",
        "apart": f"gather of {n} execute(), coalesce=False ({n} requests)",
        "many": f"1 × await execute_many({n})",
    }
    contenders = {labels[k]: contender(k) for k in labels}
    section = Section(f"AsyncSpeckleClient, {n} activeUser queries: awaited one by one vs gathered")
    by_latency: dict[str, Rounds] = {}
    for latency, rounds in (("off", 3), ("on", 1 if ctx.quick else 2)):
        ctx.control(f"latency {latency}")
        by_latency[latency] = median_of_rounds(contenders, rounds)
    ctx.control("latency off")
    off, on = by_latency["off"], by_latency["on"]
    for label in contenders:
        section.rows.append(
            Row(label, on[label], "per 50", f"latency ON; OFF: {off[label] * 1000:7.1f} ms")
        )
    sequential, gathered = labels["sequential"], labels["gather"]
    section.targets.append(
        Target("gather vs one by one, latency ON", on.ratio(sequential, gathered), 20.0)
    )
    section.ratios.append(("gather vs one by one, latency OFF", off.ratio(sequential, gathered)))
    section.ratios.append(
        ("gather coalesced vs coalesce=False, latency ON", on.ratio(labels["apart"], gathered))
    )
    section.notes.append(
        "coalesce=False: 50 requests at once, of which the dev server checks 4 tokens at a time "
        "(Node's bcrypt thread pool); the real server took 2.0–2.2 s for this on 2 cores."
    )
    return section


def bench_projects(ctx: Context) -> Section:
    """``projects()`` walking all of a user's 200 projects vs raw httpx following the same
    cursor (the floor), page size 25 (8 requests) and 100 (2 requests); latency ON and OFF."""
    from speckle_nb._graphql_core import PROJECTS_QUERY
    from speckle_nb.graphql import SpeckleClient

    headers = {"Authorization": f"Bearer {ctx.many}", "Content-Type": "application/json"}
    raw = httpx.Client(headers=headers)
    ours = SpeckleClient(ctx.url, ctx.many)

    def walk_raw(page_size: int) -> Callable[[], float]:
        def go() -> None:
            cursor, count = None, 0
            while True:
                variables = {"limit": page_size, "cursor": cursor}
                response = raw.post(
                    f"{ctx.url}/graphql", json={"query": PROJECTS_QUERY, "variables": variables}
                )
                page = response.json()["data"]["activeUser"]["projects"]
                count += len(page["items"])
                cursor = page["cursor"]
                if not page["items"] or not cursor:
                    break
            assert count == PROJECT_COUNT

        return lambda: timed(go)

    def walk_ours(page_size: int) -> Callable[[], float]:
        return lambda: timed(
            lambda: _expect(len(list(ours.projects(page_size=page_size))) == PROJECT_COUNT)
        )

    contenders = {
        "raw httpx, cursor walk, 25 per page (floor)": walk_raw(25),
        "SpeckleClient.projects(), 25 per page": walk_ours(25),
        "SpeckleClient.projects(page_size=100)": walk_ours(100),
    }
    section = Section(f"all {PROJECT_COUNT} projects of a user, median per walk")
    by_latency: dict[str, Rounds] = {}
    try:
        for latency, rounds in (("off", 5), ("on", 2 if ctx.quick else 3)):
            ctx.control(f"latency {latency}")
            by_latency[latency] = median_of_rounds(contenders, rounds)
    finally:
        ctx.control("latency off")
        raw.close()
        ours.close()
    off, on = by_latency["off"], by_latency["on"]
    for label in contenders:
        section.rows.append(
            Row(label, on[label], "per walk", f"latency ON; OFF: {off[label] * 1000:7.1f} ms")
        )
    floor, ours25 = (
        "raw httpx, cursor walk, 25 per page (floor)",
        "SpeckleClient.projects(), 25 per page",
    )
    section.targets.append(
        Target("projects() vs raw httpx, latency ON", on.ratio(floor, ours25), 0.9)
    )
    section.ratios.append(("projects() vs raw httpx, latency OFF", off.ratio(floor, ours25)))
    return section


def _expect(condition: bool) -> None:
    assert condition


def bench_import(ctx: Context) -> Section:
    """Wall time of a fresh interpreter importing speckle_nb vs importing httpx."""
    runs = 5 if ctx.quick else 9
    section = Section(f"import cost: fresh `python -c ...`, median wall of {runs} runs (no server)")

    # Bytecode as an installed package has it: PYTHONDONTWRITEBYTECODE (set on some machines)
    # would make every run compile our modules from source while httpx's .pyc files exist.
    # The cache goes to a temporary prefix, not into the source tree.
    cache = tempfile.mkdtemp(prefix="speckle-nb-bench-pyc-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache

    def wall(code: str) -> Callable[[], float]:
        argv = [sys.executable, "-c", code]
        subprocess.run(argv, check=True, env=env)  # warm: writes the bytecode cache
        return lambda: timed(lambda: subprocess.run(argv, check=True, env=env))

    contenders = {
        "python -c pass (interpreter start)": wall("pass"),
        "python -c 'import httpx'": wall("import httpx"),
        "python -c 'import speckle_nb'": wall("import speckle_nb"),
        "python -c 'import speckle_nb.graphql'": wall("import speckle_nb.graphql"),
    }
    try:
        medians = median_of_rounds(contenders, runs)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for label in contenders:
        section.rows.append(Row(label, medians[label], "per run"))
    httpx_run = "python -c 'import httpx'"
    # The client is what a notebook pays for: speckle_nb.graphql, which loads httpx.
    section.targets.append(
        Target(
            "import speckle_nb.graphql vs import httpx",
            medians.ratio("python -c 'import speckle_nb.graphql'", httpx_run),
            1.2,
            higher=False,
        )
    )
    section.ratios.append(
        (
            "import speckle_nb (every kernel start) vs import httpx",
            medians.ratio("python -c 'import speckle_nb'", httpx_run),
        )
    )
    return section


def bench_client_cost(ctx: Context) -> Section:
    """What the client itself costs per call, with the network taken out (``MockTransport``).

    No target: it shows where the end-to-end ratios come from, without server or loopback noise.
    """
    from speckle_nb.graphql import SpeckleClient

    n, rounds = (500, 5) if ctx.quick else (1000, 7)
    body = json.dumps({"data": {"data": {"id": "u1", "name": "Demo User"}}}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    headers = {"Authorization": f"Bearer {ctx.token}", "Content-Type": "application/json"}
    raw = httpx.Client(headers=headers, transport=httpx.MockTransport(answer))
    ours = SpeckleClient(ctx.url, ctx.token, transport=httpx.MockTransport(answer))
    endpoint = f"{ctx.url}/graphql"
    payload = {"query": ACTIVE_USER}

    def run_raw() -> float:
        return timed(lambda: [raw.post(endpoint, json=payload).json() for _ in range(n)]) / n

    def run_ours() -> float:
        return timed(lambda: [ours.execute(ACTIVE_USER) for _ in range(n)]) / n

    try:
        medians = median_of_rounds({"raw httpx.Client": run_raw, "SpeckleClient": run_ours}, rounds)
    finally:
        raw.close()
        ours.close()
    section = Section(f"client-side cost per call, no network (MockTransport), {rounds} × {n}")
    for label in ("raw httpx.Client", "SpeckleClient"):
        section.rows.append(Row(label, medians[label], "per call"))
    section.ratios.append(
        ("SpeckleClient cost vs raw httpx", medians.ratio("SpeckleClient", "raw httpx.Client"))
    )
    return section


BENCHMARKS: list[Callable[[Context], Section]] = [
    bench_active_user,
    bench_client_cost,
    bench_batch,
    bench_gather,
    bench_projects,
    bench_import,
]


# --------------------------------------------------------------------------- report


def print_section(section: Section) -> None:
    print(f"\n== {section.title}")
    width = max(len(r.label) for r in section.rows) + 2
    for row in section.rows:
        print(f"  {row.label:<{width}} {row.median * 1000:10.3f} ms {row.unit:<9} {row.note}")
    for label, ratio in section.ratios:
        print(f"  info  {label}: {ratio:.2f}×")
    for target in section.targets:
        print(target.line())
    for note in section.notes:
        print(f"  note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("-k", default="", help="run only benchmarks whose name contains this")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    started = time.perf_counter()
    server = ServerProcess()
    print(f"dev server {server.url} (child process), Python {sys.version.split()[0]}, "
          f"httpx {httpx.__version__}")  # fmt: skip
    ctx = Context(server.url, server.token, server.control, server.many, quick=args.quick)
    sections: list[Section] = []
    try:
        for bench in BENCHMARKS:
            if args.k in bench.__name__:
                began = time.perf_counter()
                sections.append(bench(ctx))
                print_section(sections[-1])
                print(f"  ({time.perf_counter() - began:.0f} s)")
    finally:
        server.stop()
    if args.k in "bench_signin_latency":
        # The sign-in path has its own harness (a Jupyter server and Chromium); same command.
        import signin_latency

        signin_latency.main(quick=args.quick)
    targets = [t for s in sections for t in s.targets]
    missed = [t for t in targets if not t.ok]
    print(
        f"\n{len(targets) - len(missed)}/{len(targets)} targets met "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
