"""``python -m factflow_replay_dagster.cli``: the CLI without the console script on PATH."""

from . import main

main()
