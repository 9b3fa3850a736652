"""Steps in parallel processes (`RETAIL_PARALLEL_STEPS`) against one DuckDB file.

DuckDB refuses a second process while one writes. The warehouse lock makes a step wait for
the writer instead of failing; within one process it is re-entrant, so the sequential default
never waits for itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from retail_assets.warehouse import WarehouseResource
from retail_assets.warehouse.lock import warehouse_lock

WRITER = textwrap.dedent(
    """
    import sys, time
    from retail_assets.warehouse import WarehouseResource
    warehouse = WarehouseResource(path=sys.argv[1])
    with warehouse.connect() as con:
        con.execute("create table sales as select 42 as units")
        print("writing", flush=True)
        time.sleep(2.0)
        con.execute("insert into sales values (43)")
    """
)


def test_a_reader_in_another_process_waits_for_the_writer_instead_of_failing(tmp_path):
    """A step process writes for two seconds; a reader started meanwhile gets the finished
    table (both rows) instead of DuckDB's 'Could not set lock on file'."""
    path = tmp_path / "warehouse.duckdb"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    started = time.monotonic()
    rows = WarehouseResource(path=str(path)).query("select units from sales order by units")
    assert writer.wait(timeout=30) == 0
    assert rows["units"].to_list() == [42, 43]
    assert time.monotonic() - started > 1.0, "the reader waited for the writer"


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    """dbt's build holds the write lock and reads its row counts inside it: nested reads and
    writes in one process go through at once."""
    path = tmp_path / "warehouse.duckdb"
    warehouse = WarehouseResource(path=str(path))
    done = threading.Event()

    def nested():
        with warehouse_lock(path, exclusive=True):
            with warehouse.connect() as con:
                con.execute("create table t as select 1 as x")
            assert warehouse.query("select x from t")["x"].to_list() == [1]
        with warehouse_lock(path, exclusive=False), warehouse_lock(path, exclusive=True):
            warehouse.write_table("main", "u", warehouse.query("select x from t"))
        done.set()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert done.is_set(), "a nested lock in the same process waited for itself"


def test_parallel_steps_are_validated_and_choose_the_executor(monkeypatch):
    import dagster as dg

    from retail_assets.definitions import executor_for
    from retail_assets.settings import get_settings

    monkeypatch.setenv("RETAIL_PARALLEL_STEPS", "0")
    with pytest.raises(ValueError, match="RETAIL_PARALLEL_STEPS must be a whole number >= 1"):
        get_settings()
    monkeypatch.setenv("RETAIL_PARALLEL_STEPS", "two")
    with pytest.raises(ValueError, match="got 'two'"):
        get_settings()
    monkeypatch.setenv("RETAIL_PARALLEL_STEPS", "2")
    assert executor_for(get_settings()).name == dg.multiprocess_executor.name
    monkeypatch.delenv("RETAIL_PARALLEL_STEPS")
    assert executor_for(get_settings()) is dg.in_process_executor


def test_a_parallel_run_keeps_its_step_processes_output_in_the_run_log(tmp_path):
    """`RETAIL_PARALLEL_STEPS=2 retail materialize`, as a user runs it: the terminal shows the
    progress lines and the summary, while what the step processes write (Dagster's step log)
    goes to the run log; the run id the summary prints is Dagster's, tagged with the summary."""
    import os

    import dagster as dg

    from retail_assets.runner import SUMMARY_TAG

    home = tmp_path / "home"
    env = {**os.environ, "RETAIL_HOME": str(home), "RETAIL_PARALLEL_STEPS": "2"}
    for var in ("DAGSTER_HOME", "RETAIL_POSTGRES_URL", "RETAIL_NOW"):
        env.pop(var, None)
    cli = [sys.executable, "-m", "retail_assets.cli"]
    subprocess.run([*cli, "generate", "--scale", "tiny"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [*cli, "materialize", "--scale", "tiny", "--select", "group:raw"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    assert " - dagster - " not in terminal, terminal[:2000]
    assert "platform run succeeded" in done.stdout
    log_path = terminal.split("run log (tracebacks, dbt output): ")[1].split()[0]
    from pathlib import Path

    assert " - dagster - " in Path(log_path).read_text(), "the step processes' log is there"
    printed = done.stdout.split("run ", 1)[1][:8]  # the summary's title: "run <id> in <s>s"
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
    matching = [run for run in runs if run.run_id.startswith(printed)]
    assert len(matching) == 1, (printed, [run.run_id for run in runs])
    assert SUMMARY_TAG in matching[0].tags

    # Two parallel runs in one process: the second's step processes write to its own log
    # (the forkserver they fork from started with the first run's descriptors).
    twice = subprocess.run(
        [sys.executable, "-c", TWO_RUNS], env=env, capture_output=True, text=True, timeout=900
    )
    assert twice.returncode == 0, twice.stdout[-3000:] + twice.stderr[-3000:]
    first, second = twice.stdout.split()[-2:]
    assert first != second
    for log in (first, second):
        assert " - dagster - " in Path(log).read_text(), f"{log} lacks its step processes' log"


TWO_RUNS = textwrap.dedent(
    """
    from retail_assets.runner import materialize_platform
    from retail_assets.settings import get_settings
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()
    settings = get_settings()
    for _ in range(2):
        summary = materialize_platform(settings, selection="group:raw")
        assert summary.success, summary.problems
        print(summary.log_path)
    """
)
