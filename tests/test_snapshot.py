"""Pipeline config snapshots: what YAML reads as, and clear refusals that name the problem."""

from __future__ import annotations

import pytest

from factflow_replay_dagster.errors import SnapshotError
from factflow_replay_dagster.pipelines import SAMPLES
from factflow_replay_dagster.snapshot import ConfigSnapshot

CONFIG = """\
pipeline: p
version: {version}
routes:
  - name: r
    queue: q
    stages: [{{name: s}}]
"""


@pytest.mark.parametrize(("written", "read"), [("1", "1"), ('"1.10"', "1.10"), ("v2", "v2")])
def test_a_version_is_text_even_when_yaml_reads_an_integer(written: str, read: str) -> None:
    assert ConfigSnapshot.parse(CONFIG.format(version=written)).config.version == read


def test_a_float_version_is_refused_rather_than_misread() -> None:
    with pytest.raises(SnapshotError, match="quote it"):
        ConfigSnapshot.parse(CONFIG.format(version="1.10"))


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[1, 2]", "must be a YAML mapping"),
        ("pipeline: p\nversion: '1'\nroutes: []\n", "routes"),
        (CONFIG.format(version="true"), "version"),
        (CONFIG.format(version="'1'").replace("name: s", "name: ../s"), "path separator"),
        ("pipeline: [unclosed", "not valid YAML"),
    ],
)
def test_bad_snapshots_name_what_is_wrong(text: str, names: str) -> None:
    with pytest.raises(SnapshotError, match=names):
        ConfigSnapshot.parse(text)


def test_the_bundled_samples_parse() -> None:
    for path in SAMPLES.values():
        assert ConfigSnapshot.load(path).config.routes


def test_a_derived_queue_name_longer_than_amqp_allows_is_refused() -> None:
    """``<route queue>.<stage>`` of a valid 250-character queue is 256: not a queue name."""
    text = (
        f'pipeline: p\nversion: "1"\nroutes:\n  - name: r\n    queue: {"q" * 250}\n'
        "    stages: [{name: fetch}, {name: parse}]\n"
    )
    with pytest.raises(SnapshotError, match=r"stage r/parse would consume invalid queue id"):
        ConfigSnapshot.parse(text)
