"""K ComfyUI test servers in one process, for the benchmarks (`bench.stack.ComfyFarm`).

Prints `{"urls": [...]}` once they answer, then reads commands on stdin: `dump` prints one
JSON line with each server's stats and, per prompt, when it started and finished executing
(server clock, epoch seconds); `quit` (or end of input) stops the servers.

    python -m bench.comfy_farm /tmp/farm --servers 2 --render-time 2.0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tests.comfyui_server import ComfyUITestServer


def _timeline(history: dict[str, Any]) -> dict[str, dict[str, float | str]]:
    """prompt id -> execution start / end (s) and outcome, from ComfyUI's history messages."""
    found: dict[str, dict[str, float | str]] = {}
    for prompt_id, entry in history.items():
        status = entry.get("status") or {}
        times = {name: data.get("timestamp") for name, data in status.get("messages", [])}
        start = times.get("execution_start")
        end = times.get("execution_success") or times.get("execution_error")
        if start is None or end is None:
            continue
        found[prompt_id] = {
            "start": start / 1000.0,
            "end": end / 1000.0,
            "status": str(status.get("status_str", "")),
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--render-time", type=float, default=2.0)
    args = parser.parse_args(argv)

    servers = [
        ComfyUITestServer(args.root / f"comfy-{i}", render_time_s=args.render_time, cache=False)
        for i in range(args.servers)
    ]
    try:
        for server in servers:
            server.start()
        print(json.dumps({"urls": [s.url for s in servers]}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "dump":
                dump = [
                    {
                        "url": s.url,
                        "stats": dataclasses.asdict(s.stats),
                        "prompts": _timeline(s.history()),
                    }
                    for s in servers
                ]
                print(json.dumps({"servers": dump}), flush=True)
            elif command == "quit":
                break
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
