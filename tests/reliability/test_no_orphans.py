"""Commands that start processes leave none behind: ``demo`` and ``bench`` stopped with SIGTERM
(as ``timeout`` and service managers do) or killed outright, and ``broker`` stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from streams.tools.broker import free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "command.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPGUIDE_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.tools.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return proc, log


def command(p: psutil.Process) -> str:
    """A process's command line, "" once it has exited (a zombie has none to read)."""
    try:
        return " ".join(p.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def descendants_once_running(proc: subprocess.Popen[bytes], log: Path, needs: str, timeout_s: float) -> set:
    """Every process the command started (recursively), once one whose command line contains
    ``needs`` has run for a few seconds (a worker with its trainer, the broker beside it)."""
    seen: set[psutil.Process] = set()
    deadline = time.monotonic() + timeout_s
    found_at = None
    while found_at is None or time.monotonic() < found_at + 5.0:
        assert proc.poll() is None, f"the command ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {needs!r} process after {timeout_s} s:\n{log.read_text()[-3000:]}"
        with_children = psutil.Process(proc.pid).children(recursive=True)
        seen.update(with_children)
        if found_at is None and any(needs in command(p) for p in with_children):
            found_at = time.monotonic()
        time.sleep(0.2)
    return seen


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_over(processes: set, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return [f"{p.pid} {command(p)[:120]}" for p in alive]
        time.sleep(0.3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_demo_stopped_or_killed_leaves_no_process(tmp_path, sig):
    proc, log = start(tmp_path, "demo", "--events", "100000", "--rate", "200")
    try:
        # The guide starts once the worker is ready: then the broker, the worker and the guide run.
        children = descendants_once_running(proc, log, "streams.tools.cli guide", 180)
        assert any("broker" in command(p) for p in children), children
        assert any("streams.tools.cli worker" in command(p) for p in children), children
        proc.send_signal(sig)
        proc.wait(60)
        assert left_over(children) == [], log.read_text()[-2000:]
    finally:
        proc.kill()
        proc.wait()


def test_bench_stopped_leaves_no_process(tmp_path):
    report = tmp_path / "report"
    proc, log = start(tmp_path, "bench", "--quick", "--duration", "60", "--only", "throughput", "--report", str(report))
    try:
        children = descendants_once_running(proc, log, "streams.tools.cli worker", 120)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert left_over(children) == [], log.read_text()[-2000:]
    finally:
        proc.kill()
        proc.wait()


def test_broker_stopped_leaves_no_process(tmp_path):
    port = free_port()
    proc, log = start(tmp_path, "broker", "--port", str(port))
    try:
        wait_for_port(port, 20, proc)
        children = set(psutil.Process(proc.pid).children(recursive=True)) | {psutil.Process(proc.pid)}
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert left_over(children) == [], log.read_text()[-2000:]
    finally:
        proc.kill()
        proc.wait()
