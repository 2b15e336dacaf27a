"""The Dagster code location of this repository: ``dagster dev -w workspace.yaml`` loads ``defs``.

Configuration comes from FACTFLOW_* and AWS_* environment variables (see the README).
"""

from factflow_replay_dagster.defs import build_definitions

defs = build_definitions()
