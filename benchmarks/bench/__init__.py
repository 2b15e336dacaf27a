"""The side-by-side replay benchmark of issue 11, run by ``scripts/bench`` (``benchmarks/run.py``).

Modules: ``common`` (what the orchestrator and its child processes share), ``lab`` (servers,
stored objects, one child process per measurement), ``matrix`` (which rows are measured: the
place to add rows), ``broker``/``storage``/``project``/``extras`` (the measurements, run in
child processes by ``child``), ``profiles`` (pyinstrument), ``report`` (docs/performance.md).
"""
