"""The pipeline config snapshot: routes, queues and ordered stages, stored with every execution.

Replay and recovery resolve routes and queues from the snapshot an execution ran with, never
from today's config files: two configs can give the same route name different queues.
The format is documented in ``docs/protocol.md``.
"""

from __future__ import annotations

__all__ = ["ConfigSnapshot", "PipelineConfig", "RouteConfig", "StageConfig", "StageRef"]

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ._bounded_yaml import MAX_YAML_BYTES, load_bounded
from ._validation import describe_validation_error, repeated, some
from .errors import (
    AmbiguousStageError,
    InvalidIdError,
    SnapshotError,
    UnknownRouteError,
    UnknownStageError,
)
from .ids import validate_id


def _id(kind: str) -> AfterValidator:
    return AfterValidator(lambda value: validate_id(value, kind=kind))  # type: ignore[arg-type]


RouteName = Annotated[str, _id("route")]
StageName = Annotated[str, _id("stage")]
QueueName = Annotated[str, _id("queue")]


class StageConfig(BaseModel):
    """One stage: a name, the callable the reference runtime runs, and optionally its own queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StageName
    callable: str | None = Field(
        default=None,
        description="`module:function` run by the reference runtime; None for stages run "
        "by another deployment.",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    )
    queue: QueueName | None = Field(
        default=None, description="The queue this stage consumes; see RouteConfig.stage_queue."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Passed to the callable.")


class RouteConfig(BaseModel):
    """A route: the queue it consumes from, its ordered stages, and where its output goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RouteName
    queue: QueueName = Field(description="The queue the route's first stage consumes from.")
    stages: list[StageConfig] = Field(min_length=1)
    forward_to: RouteName | None = Field(
        default=None, description="Route whose queue receives this route's last-stage artefacts."
    )

    @model_validator(mode="after")
    def _check_stages(self) -> Self:
        duplicates = repeated(stage.name for stage in self.stages)
        if duplicates:
            raise ValueError(f"route {self.name!r} repeats stages {some(duplicates)}")
        first = self.stages[0]
        if first.queue is not None and first.queue != self.queue:
            raise ValueError(
                f"route {self.name!r}: its first stage {first.name!r} consumes the route's queue "
                f"{self.queue!r}, so it cannot name another ({first.queue!r})"
            )
        return self

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def stage_queue(self, name: str) -> str:
        """The queue stage ``name`` consumes: its own, the route's for the first stage, else
        ``<route queue>.<stage>``."""
        stage = self.stage(name)
        return self._queue_of(stage, first=stage is self.stages[0])

    def stage_queues(self) -> list[tuple[StageConfig, str]]:
        """Every stage with the queue it consumes (:meth:`stage_queue`), in one pass."""
        return [
            (stage, self._queue_of(stage, first=index == 0))
            for index, stage in enumerate(self.stages)
        ]

    def _queue_of(self, stage: StageConfig, *, first: bool) -> str:
        if stage.queue is not None:
            return stage.queue
        return self.queue if first else f"{self.queue}.{stage.name}"


class StageRef(BaseModel):
    """A stage of a route, optionally of a given execution: where artefacts are stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_id: Annotated[str, _id("execution")]
    route: RouteName
    stage: StageName


def _version_text(value: object) -> object:
    """``version: 1`` (a YAML integer) means "1"; a YAML float is refused, because its text
    is already lost (``1.10`` reads as 1.1)."""
    if isinstance(value, bool):
        return value  # refused by the str type: not a version
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueErrors as validation errors
            f"version {value!r} is a YAML number, whose text is lost (1.10 reads as 1.1); "
            f'quote it, e.g. version: "{value}"'
        )
    return value


class PipelineConfig(BaseModel):
    """A whole pipeline: name, version and routes. Loaded from YAML (see docs/protocol.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: Annotated[str, _id("pipeline")]
    version: Annotated[str, BeforeValidator(_version_text)] = Field(min_length=1, max_length=64)
    description: str = ""
    routes: list[RouteConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_routes(self) -> Self:
        """Linear in the size of the config: a config within the snapshot limits (tens of
        thousands of stages or routes) is checked at once, not in hours."""
        duplicates = repeated(route.name for route in self.routes)
        if duplicates:
            raise ValueError(f"pipeline {self.pipeline!r} repeats routes {some(duplicates)}")
        forwards = {route.name: route.forward_to for route in self.routes}
        queues: dict[str, str] = {}
        for route in self.routes:
            if route.forward_to is not None and route.forward_to not in forwards:
                raise ValueError(
                    f"route {route.name!r} forwards to unknown route {route.forward_to!r} "
                    f"(routes: {some(list(forwards))})"
                )
            for stage, queue in route.stage_queues():
                owner = f"{route.name}/{stage.name}"
                try:  # a derived name (<route queue>.<stage>) can outgrow a queue name
                    validate_id(queue, kind="queue")
                except InvalidIdError as exc:
                    raise ValueError(f"stage {owner} would consume {exc}") from None
                if queue in queues:
                    raise ValueError(f"queue {queue!r} is used by both {queues[queue]} and {owner}")
                queues[queue] = owner
        ended: set[str] = set()  # routes whose forwarding chain is known to end
        for name in forwards:  # forward_to must not loop
            chain: set[str] = set()
            current: str | None = name
            while current is not None and current not in ended:
                if current in chain:
                    raise ValueError(f"routes forward in a cycle through {current!r}")
                chain.add(current)
                current = forwards[current]
            ended |= chain
        return self

    def route_names(self) -> list[str]:
        return [route.name for route in self.routes]

    def route(self, name: str) -> RouteConfig:
        for route in self.routes:
            if route.name == name:
                return route
        raise KeyError(name)

    def has_route(self, name: str) -> bool:
        return name in self.route_names()

    def iter_stages(self) -> Iterator[tuple[RouteConfig, StageConfig]]:
        for route in self.routes:
            for stage in route.stages:
                yield route, stage

    def queues(self) -> list[str]:
        """Every queue the pipeline's stages consume, in route and stage order."""
        return [queue for route in self.routes for _, queue in route.stage_queues()]

    def entry_route(self) -> RouteConfig:
        """The route no other route forwards into (the first one if several)."""
        targets = {route.forward_to for route in self.routes}
        for route in self.routes:
            if route.name not in targets:
                return route
        return self.routes[0]  # pragma: no cover - cycles are rejected above

    def downstream(self, route: str, stage: str) -> list[tuple[str, str]]:
        """``(route, stage)`` itself and everything after it: the rest of its route, then the
        routes it forwards into, in order."""
        current = self.route(route)
        names = current.stage_names()
        chain = [(current.name, name) for name in names[names.index(stage) :]]
        while current.forward_to is not None:
            current = self.route(current.forward_to)
            chain.extend((current.name, name) for name in current.stage_names())
        return chain

    def next_stage(self, route: str, stage: str) -> tuple[str, str] | None:
        """Where ``route/stage``'s artefacts go next, or None at the end of the pipeline."""
        chain = self.downstream(route, stage)
        return chain[1] if len(chain) > 1 else None

    def previous_stage(self, route: str, stage: str) -> tuple[str, str] | None:
        """The stage whose artefacts ``route/stage`` consumes, or None for a source stage."""
        current = self.route(route)
        names = current.stage_names()
        index = names.index(stage)
        if index > 0:
            return current.name, names[index - 1]
        for other in self.routes:
            if other.forward_to == route:
                return other.name, other.stages[-1].name
        return None


class ConfigSnapshot(BaseModel):
    """A pipeline config together with the exact text it was loaded from (kept verbatim)."""

    model_config = ConfigDict(frozen=True)

    text: str
    config: PipelineConfig

    @classmethod
    def parse(cls, text: str, *, source: str = "<snapshot>") -> ConfigSnapshot:
        """Parse YAML ``text``; a :class:`SnapshotError` says what is wrong and where.

        Bounded before anything is built (:mod:`._bounded_yaml`): at most 1 MiB of text,
        64 levels of nesting and 100,000 values with aliases expanded.
        """
        data = load_bounded(text, source=source)
        if not isinstance(data, dict):
            raise SnapshotError(f"{source}: a pipeline config must be a YAML mapping")
        try:
            config = PipelineConfig.model_validate(data)
        except ValidationError as exc:
            problems = describe_validation_error(exc)
            raise SnapshotError(f"{source}: invalid pipeline config: {problems}") from None
        except InvalidIdError as exc:
            raise SnapshotError(f"{source}: invalid pipeline config: {exc}") from None
        return cls(text=text, config=config)

    @classmethod
    def load(cls, path: Path | str) -> ConfigSnapshot:
        """Read and parse the config file ``path``; no more of it than the largest snapshot
        :meth:`parse` takes is read, so a huge (or endless) file is refused at once."""
        path = Path(path)
        try:
            with path.open(encoding="utf-8") as handle:
                text = handle.read(MAX_YAML_BYTES + 1)
        except OSError as exc:
            raise SnapshotError(f"cannot read pipeline config {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise SnapshotError(
                f"cannot read pipeline config {path}: not UTF-8 text (byte {exc.start})"
            ) from None
        return cls.parse(text, source=str(path))

    # -- resolution with errors that name the execution -------------------------------------

    def resolve_route(self, execution_id: str, route: str) -> RouteConfig:
        validate_id(route, kind="route")
        if not self.config.has_route(route):
            raise UnknownRouteError(execution_id, route, self.config.route_names())
        return self.config.route(route)

    def resolve_stage(self, execution_id: str, stage: str, *, route: str | None = None) -> str:
        """The route holding ``stage``: ``route`` if given (checked), else the only one."""
        validate_id(stage, kind="stage")
        if route is not None:
            found = self.resolve_route(execution_id, route)
            if stage not in found.stage_names():
                raise UnknownStageError(execution_id, stage, found.stage_names(), route=route)
            return found.name
        routes = [r.name for r in self.config.routes if stage in r.stage_names()]
        if not routes:
            every = [f"{r.name}/{s.name}" for r, s in self.config.iter_stages()]
            raise UnknownStageError(execution_id, stage, every)
        if len(routes) > 1:
            raise AmbiguousStageError(execution_id, stage, routes)
        return routes[0]
