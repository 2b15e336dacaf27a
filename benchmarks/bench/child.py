"""One measurement in a process of its own, so rows do not share memory, caches or threads.

Usage (by ``lab.Lab.measure``): ``python -m bench.child SPEC.json RESULT.json``. The spec
names a function (``module:function``) with its context and parameters; the function returns
one repetition's figures, to which this adds the process's peak RSS.
With ``"profile"`` in the spec, the function runs under pyinstrument and the session is saved.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import traceback
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    module_name, function_name = spec["fn"].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    profile = spec.get("profile")
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            figures = function(spec["ctx"], **spec["params"])
        finally:
            profiler.stop()
        profiler.last_session.save(profile)  # type: ignore[union-attr]
    else:
        figures = function(spec["ctx"], **spec["params"])
    figures.setdefault("rss_mb", peak_rss_mb())
    return figures


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``). Not ``ru_maxrss``: Linux carries the
    parent's peak into a child across ``vfork`` + ``exec``, so every child would report at
    least the orchestrator's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    spec_path, result_path = (Path(p) for p in sys.argv[1:3])
    spec = json.loads(spec_path.read_text())
    try:
        result = {"ok": True, "figures": run(spec)}
    except Exception:  # noqa: BLE001 - reported to the orchestrator, which shows it
        result = {"ok": False, "error": traceback.format_exc()}
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
