"""YAML from text nobody vouches for, within limits checked before anything is built.

PyYAML's safe loader constructs no arbitrary objects, but it reads a document of any size
(100 MB of it takes minutes and hundreds of MB), composes nesting recursively (a deep
document ends in ``RecursionError``), and shares aliased nodes, so a "billion laughs" of a
few hundred bytes loads in a millisecond as a structure that holds 10^9 values for whatever
walks it next (validation, JSON, a UI). Here the text's size is checked first, then the
nesting depth as the document is composed, then the number of nodes with every alias
expanded (and aliases that refer to themselves), and only then are Python objects built.
"""

from __future__ import annotations

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "load_bounded"]

from typing import Any

import yaml

from .errors import SnapshotError

#: The largest YAML text read (UTF-8 bytes): a pipeline config is a few KB.
MAX_YAML_BYTES = 1024 * 1024
#: Collections nested deeper than this are refused.
MAX_YAML_DEPTH = 64
#: Nodes (scalars, sequences, mappings) the document holds with every alias expanded.
MAX_YAML_NODES = 100_000


#: What PyYAML's constructors raise, besides its own errors, for a malformed tagged value.
_UNBUILDABLE = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)


class _TooDeepError(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """The safe loader, counting how deep the node being composed is nested."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _TooDeepError
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_size(root: yaml.Node, source: str) -> int:
    """The nodes ``root`` holds with aliases expanded, counted over the shared graph (each
    node once); refuses more than :data:`MAX_YAML_NODES` and an alias inside its own anchor."""
    sizes: dict[int, int] = {}
    path: set[int] = set()  # nodes being counted: the ancestors of the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise SnapshotError(
                    f"{source}: more than {MAX_YAML_NODES:,} YAML values once its aliases are "
                    "expanded (a 'billion laughs' document?); refused before it was built"
                )
            continue
        if key in sizes:
            continue
        path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in path:
                raise SnapshotError(
                    f"{source}: an alias refers to the node that anchors it (a recursive "
                    "structure); refused"
                )
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def load_bounded(text: str, *, source: str) -> Any:
    """The YAML document ``text`` as Python values, or :class:`SnapshotError` naming
    ``source`` and the limit it broke (:data:`MAX_YAML_BYTES`, :data:`MAX_YAML_DEPTH`,
    :data:`MAX_YAML_NODES`) or where it does not parse."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise SnapshotError(
            f"{source}: larger than {MAX_YAML_BYTES:,} bytes (a pipeline config is a few KB); "
            "refused before it was parsed"
        )
    try:
        loader = _Loader(text)  # refuses characters YAML does not allow, such as NUL
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{source}: not valid YAML: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except _TooDeepError:
        raise SnapshotError(
            f"{source}: YAML nested more than {MAX_YAML_DEPTH} levels deep; refused"
        ) from None
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{source}: not valid YAML: {exc}") from None
    except _UNBUILDABLE as exc:
        # PyYAML's constructors fail on malformed tagged values with Python's own errors:
        # ``!!timestamp x`` (AttributeError), ``!!bool x`` (KeyError), ``!!int x``
        # (ValueError).
        raise SnapshotError(
            f"{source}: not valid YAML: a tagged value cannot be built "
            f"({type(exc).__name__}: {exc})"
        ) from None
    finally:
        loader.dispose()
