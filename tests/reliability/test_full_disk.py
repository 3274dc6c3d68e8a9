"""The disk under a worker's tables fills up in the middle of a click stream: the worker stops at
once with EX_IOERR, nothing it could not store acknowledged or dead-lettered; restarted on the
same data once the disk has room, it counts every click exactly once and answers each one.

The small disk is a tmpfs mounted for the test, which needs root (CI and this machine run as root);
elsewhere the test is skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.engine.app import EXIT_STORAGE_FAILED
from streams.testing.harness import ClickStream, Cluster, fresh_settings, progress_report, wait_until, wait_until_exact
from streams.tools.cluster import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Room for a started worker's tables, not for a few hundred clicks' write-ahead log.
SMALL = "1200k"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def grow(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)


def test_a_full_disk_stops_the_worker_and_a_restart_loses_and_duplicates_nothing(broker, tmp_path, small_disk):
    settings = fresh_settings(broker, tmp_path, coalesce_after_ms=1e9).with_(data_dir=small_disk / "worker")
    cluster = Cluster(settings)
    log_path = tmp_path / "worker.log"  # off the small disk: the worker must be able to say why it stopped
    try:
        worker = WorkerProcess(settings, log_path).start()
        cluster.workers.append(worker)
        worker.wait_ready()
        stream = ClickStream(cluster, "fd", 1500, 40, rate=300)
        stream.start()
        wait_until(lambda: not worker.alive, 90, "the worker to stop on the full disk")
        assert worker.proc is not None and worker.proc.returncode == EXIT_STORAGE_FAILED, worker.log_tail()
        log = log_path.read_text(errors="replace")
        assert "the disk under the tables failed" in log and "No space left on device" in log
        assert "internal error on" not in log, "an event was dead-lettered for the disk's failure"
        assert stream.done.wait(60), "the producer did not finish"

        grow(small_disk)
        cluster.workers.clear()
        restarted = WorkerProcess(settings, log_path).start()
        cluster.workers.append(restarted)
        restarted.wait_ready()
        wrong = wait_until_exact(restarted.url, stream.expected, stall_s=30)
        assert not wrong, f"users with wrong counts: {list(wrong.items())[:3]}\n" + progress_report(
            restarted.url, cluster.topics.clicks
        )
        wait_until(
            lambda: stream.click_ids <= {r.value["trigger_event_id"] for r in cluster.recommendations.items},
            60,
            "a recommendation for every click",
        )
        assert not cluster.deadletter.items, cluster.deadletter.items[:3]
    finally:
        cluster.close()
        time.sleep(0.5)  # let RocksDB's files close before the tmpfs goes
