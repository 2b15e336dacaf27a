"""Recovery on RabbitMQ + SeaweedFS + PostgreSQL: a stage fails, the sensor (evaluated as the
daemon would) requests recovery_job, one init message restarts it, and it completes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest
from support.environments import drain, queue_depth
from support.servers.workers import WorkerProcess

from factflow_replay_dagster.connect import Components
from factflow_replay_dagster.defs.definitions import build_definitions
from factflow_replay_dagster.executions import ExecutionStatus
from factflow_replay_dagster.pipelines import sample_config
from factflow_replay_dagster.runtime import start_execution
from factflow_replay_dagster.settings import Settings
from factflow_replay_dagster.snapshot import ConfigSnapshot


def wait_for(
    components: Components,
    execution_id: str,
    status: ExecutionStatus,
    worker: WorkerProcess,
    timeout: float = 240,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if components.executions.get_execution(execution_id).status is status:
            return
        time.sleep(0.2)
    pytest.fail(f"{execution_id} never became {status}:\n{worker.log_tail()}")


def test_a_failed_stage_is_recovered_by_the_sensor_without_refetching(
    components: Components, servers: dict[str, str], tmp_path: Path
) -> None:
    news = sample_config("news")
    record = start_execution(
        ConfigSnapshot.load(news), executions=components.executions, publisher=components.publisher
    )
    faulty = WorkerProcess(
        [news],
        env={**servers, "FACTFLOW_FAIL_STAGES": "annotate"},
        log_path=tmp_path / "faulty.log",
    ).start()
    defs = build_definitions(Settings.from_env(servers))
    sensor = defs.resolve_sensor_def("failed_execution_sensor")
    resources = {"executions": defs.resources["executions"]}  # type: ignore[index]
    try:
        wait_for(components, record.id, ExecutionStatus.FAILED, faulty)
        # The worker goes on with the failed attempt's other stages: parse finishes.
        deadline = time.monotonic() + 120
        while components.executions.stage_lineage(record.id, "ingest", "parse").status.value != (
            "SUCCEEDED"
        ):
            assert time.monotonic() < deadline, faulty.log_tail()
            time.sleep(0.1)
    finally:
        faulty.stop()
    lineage = {(r.route, r.stage): r for r in components.executions.lineage(record.id)}
    parse_before = lineage["ingest", "parse"]
    broker = servers["FACTFLOW_BROKER_URL"]
    drain(broker, "news.enrich")  # whatever the failed attempt left is not ours to count

    with dg.instance_for_test() as instance:
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
        [request] = tick.run_requests
        assert request.run_key == f"recover:{record.id}:1"
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=tick.cursor)
        )
        assert again.run_requests == []  # a second tick does not recover it twice
        job = defs.resolve_job_def("recovery_job")
        result = job.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        )
        assert result.success
    print(
        "DBG",
        components.executions.recoveries(record.id),
        components.executions.get_execution(record.id).status,
        result.output_for_node("recover_execution"),
    )
    assert queue_depth(broker, "news.enrich") == 1  # exactly one init message
    [(properties, body)] = drain(broker, "news.enrich")
    assert properties.type == "factflow.init"
    init = json.loads(body)
    assert (init["kind"], init["stage"], init["attempt"]) == ("recover", "annotate", 2)
    assert init["input"]["stage"] == "parse"
    # Put it back, fault cleared: a healthy worker completes the execution.
    components.publisher.publish("news.enrich", [_init_message(init)])
    healthy = WorkerProcess([news], env=servers, log_path=tmp_path / "healthy.log").start()
    try:
        wait_for(components, record.id, ExecutionStatus.SUCCEEDED, healthy)
    finally:
        healthy.stop()
    lineage = {(r.route, r.stage): r for r in components.executions.lineage(record.id)}
    assert lineage["ingest", "fetch"].attempt == 1
    assert lineage["ingest", "parse"] == parse_before  # parse did not run again
    assert (lineage["enrich", "annotate"].attempt, lineage["enrich", "index"].artefact_count) == (
        2,
        240,
    )
    assert components.executions.counter(record.id, "fetch") == 240  # fetch did not run again
    [recovery] = components.executions.recoveries(record.id)
    assert recovery.state == "PUBLISHED"


def _init_message(init: dict[str, object]):
    from factflow_replay_dagster.messages import InitMessage

    return InitMessage.model_validate(init).message()
