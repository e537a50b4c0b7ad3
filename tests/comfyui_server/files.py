"""Where the test server writes outputs, and how `/view` finds them again."""

from __future__ import annotations

import os
import random
import re
import string
import threading
from itertools import cycle
from pathlib import Path
from typing import Any, Literal

FileKind = Literal["output", "temp", "input"]


class SavingOutsideOutputFolder(Exception):
    pass


class OutputStore:
    """The server's output / temp / input folders, with ComfyUI's file naming.

    Files are named `<prefix>_<counter:05>_.<ext>`; a prefix may carry a subfolder
    (`"sub/dir/probe"`). With `hostile_names` set, the names *reported* for saved files are
    taken from that list instead (a compromised or buggy server): `/view` still serves the
    real bytes under the hostile name so that a client really has something to write.
    """

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.root = root
        self.dirs: dict[FileKind, Path] = {
            "output": root / "output",
            "temp": root / "temp",
            "input": root / "input",
        }
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        letters = random.Random(seed).choices(string.ascii_lowercase, k=5)
        self.temp_prefix = "ComfyUI_temp_" + "".join(letters)
        self._lock = threading.Lock()
        self._hostile: dict[tuple[str, str, str], Path] = {}
        self._hostile_names: Any = None
        self.files_written = 0

    def use_hostile_names(self, names: list[tuple[str, str]] | None) -> None:
        with self._lock:
            self._hostile_names = cycle(names) if names else None

    def input_path(self, name: str) -> Path:
        path = (self.dirs["input"] / name).resolve()
        if self.dirs["input"].resolve() not in path.parents:
            raise ValueError(f"input file outside the input folder: {name!r}")
        return path

    def save_series(
        self, prefix: str, ext: str, payloads: list[bytes], kind: FileKind
    ) -> list[dict[str, str]]:
        base = self.dirs[kind]
        subfolder = os.path.dirname(os.path.normpath(prefix))
        filename = os.path.basename(os.path.normpath(prefix))
        folder = (base / subfolder).resolve()
        if os.path.commonpath((str(folder), str(base.resolve()))) != str(base.resolve()):
            raise SavingOutsideOutputFolder(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {folder}"
                f"\n         output_dir: {base}"
            )
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            counter = self._next_counter(folder, filename)
            saved = []
            for payload in payloads:
                name = f"{filename}_{counter:05}_.{ext}"
                (folder / name).write_bytes(payload)
                self.files_written += 1
                entry = {"filename": name, "subfolder": subfolder, "type": kind}
                if self._hostile_names is not None:
                    bad_subfolder, bad_name = next(self._hostile_names)
                    self._hostile[(kind, bad_subfolder, bad_name)] = folder / name
                    entry = {"filename": bad_name, "subfolder": bad_subfolder, "type": kind}
                saved.append(entry)
                counter += 1
        return saved

    @staticmethod
    def _next_counter(folder: Path, filename: str) -> int:
        pattern = re.compile(re.escape(filename) + r"_(\d+)_")
        found = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
        return max(found, default=0) + 1

    def resolve_view(self, filename: str, subfolder: str, kind: str) -> Path | int:
        """A file for `/view`, or the HTTP status ComfyUI answers (400 / 403 / 404)."""
        with self._lock:
            hostile = self._hostile.get((kind, subfolder, filename))
        if hostile is not None:
            return hostile
        if not filename or filename.startswith("/") or ".." in filename:
            return 400
        base = self.dirs.get(kind)  # type: ignore[call-overload]
        if base is None:
            return 400
        base_abs = os.path.abspath(base)
        folder = base_abs
        if subfolder:
            folder = os.path.abspath(os.path.join(base_abs, subfolder))
            if os.path.commonpath((folder, base_abs)) != base_abs:
                return 403
        path = Path(folder) / os.path.basename(filename)
        return path if path.is_file() else 404

    def all_files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())
