"""Sample pipelines shipped with the package: ``news`` and a config reusing its route names."""

from __future__ import annotations

__all__ = ["SAMPLES", "sample_config"]

from pathlib import Path

_HERE = Path(__file__).parent

#: Bundled configs by name: ``news`` (v1) and ``news-v2`` (same route names, other queues).
SAMPLES = {"news": _HERE / "news.yaml", "news-v2": _HERE / "news_v2.yaml"}


def sample_config(name: str = "news") -> Path:
    """The path of a bundled pipeline config."""
    try:
        return SAMPLES[name]
    except KeyError:
        raise KeyError(f"no sample pipeline {name!r} (samples: {', '.join(SAMPLES)})") from None
