"""Hostile inputs (issue 18): the time each takes to be refused and the peak memory of the
worst inputs still accepted, each case in a fresh interpreter (peak RSS via getrusage).

    python -m bench.hostile_inputs

No database is needed: the cases stop at reading and validating the production file, which
is where each is refused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "moonlit-courier" / "production.yaml"

_CASE = r"""
import json, resource, sys, time
from db.production_file import ProductionFileError, load_production
start = time.perf_counter()
try:
    load_production(sys.argv[1])
    outcome = "accepted"
except ProductionFileError as exc:
    outcome = "refused: " + str(exc).splitlines()[-1].split(": ", 2)[-1][:90]
print(json.dumps({"s": time.perf_counter() - start, "outcome": outcome,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _copy(where: Path, name: str) -> Path:
    target = where / name
    shutil.copytree(EXAMPLE.parent, target)
    return target / "production.yaml"


def _with_reference(production: Path, path: str) -> Path:
    import yaml

    data = yaml.safe_load(production.read_text())
    data["characters"][0]["references"][0]["path"] = path
    production.write_text(yaml.safe_dump(data, sort_keys=False))
    return production


def _with_settings(production: Path, anchors: str, value: str) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.foundation.test_hostile_files import _with_settings as build

    production.write_text(build(production.read_text(), anchors, value))
    return production


def cases(where: Path) -> dict[str, Path]:
    from tests.foundation.hostile import alias_bomb, bomb_png, truncated_png

    out: dict[str, Path] = {}
    for side in (13_000, 20_000):
        p = _copy(where, f"bomb{side}")
        bomb_png(p.parent / "refs" / "bomb.png", side, side)
        out[f"image bomb {side}x{side}"] = _with_reference(p, "refs/bomb.png")
    p = _copy(where, "text")
    (p.parent / "refs" / "notes.png").write_text("text\n")
    out["text file named .png"] = _with_reference(p, "refs/notes.png")
    p = _copy(where, "truncated")
    truncated_png(p.parent / "refs" / "aki-front.png", p.parent / "refs" / "half.png")
    out["truncated png"] = _with_reference(p, "refs/half.png")
    for name, path in (("escaping path", "../../../../etc/passwd"), ("absolute", "/etc/shadow")):
        out[name] = _with_reference(_copy(where, name.replace(" ", "-")), path)
    out["alias bomb"] = _with_settings(_copy(where, "aliases"), alias_bomb(), "*l8")
    out["recursive alias"] = _with_settings(_copy(where, "loop"), "l: &l [*l]", "*l")
    p = _copy(where, "huge")
    with p.open("a") as f:
        f.write("# " + "x" * (50 * 1024 * 1024) + "\n")
    out["50 MB file"] = p
    # The worst accepted: an image just under the pixel cap, aliases just under the budget.
    p = _copy(where, "at-cap")
    bomb_png(p.parent / "refs" / "big.png", 6324, 6324)  # 39,992,976 pixels
    out["accepted: image at the pixel cap"] = _with_reference(p, "refs/big.png")
    anchors = "a: &a [" + ", ".join(["x"] * 300) + "]"
    out["accepted: aliases under budget"] = _with_settings(
        _copy(where, "under-budget"), anchors, "[" + ", ".join(["*a"] * 330) + "]"
    )
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in cases(Path(tmp)).items():
            run = subprocess.run(
                [sys.executable, "-c", _CASE, str(path)],
                capture_output=True, text=True, cwd=REPO, check=True,
            )  # fmt: skip
            figures = json.loads(run.stdout)
            print(
                f"{name:36} {figures['s']:6.2f} s {figures['rss_mb']:7.1f} MB  {figures['outcome']}"
            )


if __name__ == "__main__":
    main()
