"""Start-up of the commands a writer and a TD run all day: `anime story log | diff | checkout |
commit` and `anime status`, each a new process, on the example production.

    python -m bench.cli_startup [--repeats 7] [--against DIR] [--states running,stopped]
                                [--modes resident,own] [--as-is] [--imports] [--json FILE]

The example (examples/moonlit-courier) is imported into an embedded PostgreSQL in a throw-away
data dir (ANIME_DATA_DIR under /tmp; DATABASE_URL is ignored). Every command is timed in two
states of that server:
- running: already up, held by another process (as under `anime server`);
- stopped: nothing holds it, so the command starts it and stops it again on its way out.
Per command and state: the median wall time and CPU time (user + sys of the command and of
the children it waits for, such as pg_ctl; not the server's own processes) of --repeats runs
after one warm-up run, with the 1-minute load average before each series. Two floors are timed
the same way: `python -c pass` and importing typer, SQLAlchemy's ORM, psycopg and pydantic.

Each command runs two ways (--modes): `resident`, as a user's `anime` does, forked by the
resident process (anime/resident), which the warm-up run starts; and `own` (ANIME_RESIDENT=0),
in a process of its own that imports everything. A resident command's CPU time is the console
script's plus its forked child's (counted from the resident process's reaped children, in
/proc); the resident process's own start-up, paid once per 15 idle minutes, is not in it.

--against DIR times another checkout of the project (e.g. `git archive` of an older commit
unpacked in /tmp) in the same series, one run of each in turn, so that both see the same load
on a shared machine; it must be at the same migration head, as both use one database.

Python's bytecode cache: an installed `anime` reads its modules' .pyc files. Under
PYTHONDONTWRITEBYTECODE (set on shared development machines) every start compiles the
project's modules again, so by default the commands get a private cache (PYTHONPYCACHEPREFIX
in the temporary folder, filled by the warm-up run); --as-is keeps the caller's environment.
--imports adds, per command, where `python -X importtime` says the import time goes, by
top-level package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "moonlit-courier" / "production.yaml"
STORY = "moonlit-courier"
FLOOR_IMPORTS = "import typer, sqlalchemy.orm, psycopg, pydantic"


@dataclass
class Timing:
    command: str
    state: str  # running | stopped | - (no database)
    mode: str  # resident | own | - (not anime)
    tree: str  # the checkout timed
    wall_s: float
    cpu_s: float
    runs: int
    load_before: float


def _anime() -> list[str]:
    script = Path(sys.executable).with_name("anime")
    return [str(script)] if script.exists() else [sys.executable, "-m", "anime"]


class Bench:
    def __init__(self, root: Path, trees: list[Path], as_is: bool) -> None:
        self.root = root
        self.work = root / "work.md"
        base = dict(os.environ)
        base.pop("DATABASE_URL", None)
        base.update(ANIME_DATA_DIR=str(root / "data"), ANIME_AUTHOR="bench")
        # The bench's resident processes in a folder of their own: counted, then stopped.
        self.runtime = root / "runtime"
        self.runtime.mkdir(mode=0o700)
        base.update(XDG_RUNTIME_DIR=str(self.runtime), ANIME_RESIDENT="0")
        if not as_is:
            base.pop("PYTHONDONTWRITEBYTECODE", None)
            base["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        # PYTHONPATH picks the checkout; the console script and the venv are the same.
        self.envs = {str(tree): {**base, "PYTHONPATH": str(tree)} for tree in trees}
        self.env = self.envs[str(trees[0])]
        self.edits = 0
        self.residents: set[str] = set()

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
        """(wall s, cpu s) of one process and the children it waited for, and of the child
        a resident process forked for it."""
        resident_before = self.resident_cpu() if env and env.get("ANIME_RESIDENT") == "1" else None
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            argv, env=env or self.env, cwd=self.root, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if resident_before is not None:
            time.sleep(0.5)  # the resident process reaps its children every 0.2 s
            cpu += self.resident_cpu() - resident_before
        return wall, cpu

    def resident_pids(self) -> list[int]:
        # Each pid file: the resident process's pid, then how many commands it served.
        return [int(p.read_text().split()[0]) for p in (self.runtime / "anime").glob("*.pid")]

    def resident_cpu(self) -> float:
        """CPU seconds of the children the bench's resident processes have reaped."""
        total = 0.0
        for pid in self.resident_pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return total

    def wait_for_resident(self, tree: str) -> None:
        """Until the resident process the warm-up run started for this checkout listens."""
        if tree in self.residents:
            return
        self.residents.add(tree)
        wanted = len(self.residents)
        deadline = time.monotonic() + 120
        while len(self.resident_pids()) < wanted:
            if time.monotonic() > deadline:
                raise SystemExit(f"no resident process started for {tree}")
            time.sleep(0.1)

    def stop_residents(self) -> None:
        for pid in self.resident_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)

    def anime(self, *args: str) -> tuple[float, float]:
        return self.run([*_anime(), *args])

    def edit(self) -> None:
        """An edit a writer makes: a line more at the end of the checked-out story file."""
        self.edits += 1
        with self.work.open("a", encoding="utf-8") as f:
            f.write(f"\nThe rain eases a little ({self.edits}).\n")

    def server_running(self) -> bool:
        return (self.root / "data" / "pgdata" / "postmaster.pid").exists()

    @contextmanager
    def holder(self) -> Iterator[None]:
        """Another process keeps the embedded server up (and stops it when it ends)."""
        code = (
            "import sys\nfrom db.engine import database_url\ndatabase_url()\n"
            "print('ready', flush=True)\nsys.stdin.read()\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the process holding the embedded server did not start")
        try:
            yield
        finally:
            proc.stdin.close()
            proc.wait(60)

    def series(
        self,
        label: str,
        state: str,
        argv: list[str],
        repeats: int,
        before: Callable[[], None],
        checkouts: int | None = None,
        modes: tuple[str, ...] = ("-",),
    ) -> list[Timing]:
        """Each checkout and mode in turn, run after run: a busy spell hits all alike."""
        envs = {
            (tree, mode): {**env, "ANIME_RESIDENT": "1" if mode == "resident" else "0"}
            for tree, env in list(self.envs.items())[:checkouts]
            for mode in modes
        }
        for (tree, mode), env in envs.items():
            before()
            self.run(argv, env)  # warm-up: bytecode cache, the server's own caches
            if mode == "resident":
                self.wait_for_resident(tree)
        load = os.getloadavg()[0]
        walls: dict[tuple[str, str], list[float]] = defaultdict(list)
        cpus: dict[tuple[str, str], list[float]] = defaultdict(list)
        for _ in range(repeats):
            for key, env in envs.items():
                before()
                if state == "stopped" and self.server_running():
                    raise SystemExit("the embedded server is still up between stopped runs")
                wall, cpu = self.run(argv, env)
                walls[key].append(wall)
                cpus[key].append(cpu)
        return [
            Timing(
                label,
                state,
                mode,
                tree,
                statistics.median(walls[(tree, mode)]),
                statistics.median(cpus[(tree, mode)]),
                repeats,
                load,
            )
            for tree, mode in envs
        ]


def _commands(bench: Bench) -> list[tuple[str, list[str], Callable[[], None]]]:
    def nothing() -> None:
        return None

    anime = _anime()
    work = str(bench.work)
    return [
        ("anime story log", [*anime, "story", "log", STORY], nothing),
        # An edited file against the commit it was checked out from: the writer's diff.
        ("anime story diff FILE", [*anime, "story", "diff", STORY, work], nothing),
        ("anime story checkout", [*anime, "story", "checkout", STORY], nothing),
        (
            "anime story commit FILE",
            [*anime, "story", "commit", STORY, work, "-m", "more rain"],
            bench.edit,
        ),  # fmt: skip
        ("anime status", [*anime, "status"], nothing),
    ]


def _import_profile(env: dict[str, str], cwd: Path, argv: list[str]) -> list[tuple[str, float]]:
    """Self import time per top-level package (ms), from `python -X importtime`."""
    python_argv = [sys.executable, "-X", "importtime", "-m", "anime", *argv[len(_anime()) :]]
    done = subprocess.run(python_argv, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:  # an error path imports other modules: not the command's profile
        raise SystemExit(f"{' '.join(python_argv)} failed ({done.returncode})")
    totals: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _, name = (part.strip() for part in line.replace(":", "|", 1).split("|"))
        totals[name.split(".")[0]] += int(self_us) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--against", type=Path, help="another checkout, timed in turn")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    parser.add_argument("--imports", action="store_true", help="import time by package")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--states", default="running,stopped", help="server states to time (running,stopped)"
    )
    parser.add_argument(
        "--modes", default="resident,own", help="how anime runs (resident: as installed; own)"
    )
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))

    root = Path(tempfile.mkdtemp(prefix="anime-bench-startup-", dir="/tmp"))
    trees = [REPO, *([args.against.resolve()] if args.against else [])]
    bench = Bench(root, trees, as_is=args.as_is)
    results: list[Timing] = []
    imports: dict[str, list[tuple[str, float]]] = {}
    try:
        with bench.holder():
            bench.anime("db", "upgrade")
            bench.anime("import", str(EXAMPLE))
            bench.anime("story", "checkout", STORY, "-o", str(bench.work))
            bench.edit()
            bench.anime("story", "commit", STORY, str(bench.work), "-m", "bench: first edit")
            bench.edit()  # the diff compares an edited file with its parent
            for label, argv in (
                ("python -c pass", [sys.executable, "-c", "pass"]),
                (f"python -c '{FLOOR_IMPORTS}'", [sys.executable, "-c", FLOOR_IMPORTS]),
            ):
                results += bench.series(label, "-", argv, args.repeats, lambda: None, 1)
            for label, argv, before in _commands(bench) if "running" in args.states else ():
                results += bench.series(label, "running", argv, args.repeats, before, None, modes)
                if args.imports:
                    for tree, env in bench.envs.items():
                        before()  # a commit needs an edit, or it times the error path
                        imports[f"{label} [{tree}]"] = _import_profile(env, root, argv)
        if "stopped" in args.states:
            bench.edit()
            for label, argv, before in _commands(bench):
                results += bench.series(label, "stopped", argv, args.repeats, before, None, modes)
    finally:
        bench.stop_residents()
        shutil.rmtree(root, ignore_errors=True)

    cache = "as the caller's environment" if args.as_is else "private .pyc cache"
    print(f"median of {args.repeats} runs after one warm-up; {os.cpu_count()} CPUs; {cache}")
    print(
        f"{'command':<60} {'server':<8} {'process':<8} {'wall s':>7} {'cpu s':>7} {'load':>5}"
        "  checkout"
    )
    for t in results:
        print(
            f"{t.command:<60} {t.state:<8} {t.mode:<8} {t.wall_s:7.3f} {t.cpu_s:7.3f} "
            f"{t.load_before:5.2f}  {t.tree if t.state != '-' else ''}"
        )
    for label, packages in imports.items():
        top = ", ".join(f"{name} {ms:.0f}" for name, ms in packages[:8])
        print(f"import ms, {label}: {top} (all {sum(ms for _, ms in packages):.0f})")
    if args.json:
        figures = {"results": [asdict(t) for t in results], "imports": imports}
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
