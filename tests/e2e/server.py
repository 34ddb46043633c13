"""Start `radbill radius run` (the real FreeRADIUS plus the ingester) for a test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from simulators.radius_client import RadiusClient, free_udp_port

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-123"


class RadbillProcess:
    """A `radbill ...` subprocess with its output captured line by line."""

    proc: subprocess.Popen[str] | None = None
    lines: list[str]
    env: dict[str, str]

    def _spawn(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radbill.cli", *args], cwd=PROJECT,
            env={**self.env, "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            # not stopped by SIGTERM within 20 s (systemd would wait too): keep what it said
            # and its threads' stacks for whoever looks into it, and leave no orphan behind
            # (FreeRADIUS is in the same process group)
            os.kill(self.proc.pid, signal.SIGABRT)
            time.sleep(1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(5)
            out = PROJECT / "test-artifacts" / "slow-stop"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{type(self).__name__}-{self.proc.pid}.log").write_text(self.log)
            return code

    @property
    def log(self) -> str:
        return "".join(self.lines)


class RadiusServer(RadbillProcess):
    """One FreeRADIUS instance under `radbill radius run`, output captured."""

    def __init__(self, database_url: str, data_dir: Path, ports: tuple[int, int] | None = None,
                 **env: str) -> None:
        self.auth_port, self.acct_port = ports or (free_udp_port(), free_udp_port())
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "RADBILL_DATABASE_URL": database_url,
            "RADBILL_DATA_DIR": str(data_dir),
            "RADBILL_RADIUS_REJECT_DELAY": "0",
            # each server is a node of its own (its own spool, its own cursors)
            "RADBILL_NODE_NAME": data_dir.name,
            **env,
        }
        self.node = self.env["RADBILL_NODE_NAME"]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self, timeout: float = 60) -> RadiusServer:
        self._spawn("radius", "run", "--auth-port", str(self.auth_port), "--acct-port",
                    str(self.acct_port), "--runtime-dir", str(self.data_dir / "radius"))
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not any("Ready to process requests" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("FreeRADIUS did not start:\n" + "".join(self.lines[-40:]))
            time.sleep(0.05)
        return self

    @property
    def spool(self) -> Path:
        return self.data_dir / "radius" / "spool"

    def client(self, secret: str = SECRET, timeout: float = 2.0, retries: int = 1
               ) -> RadiusClient:
        return RadiusClient("127.0.0.1", secret, self.auth_port, self.acct_port,
                            timeout=timeout, retries=retries)


class EnforcementWorker(RadbillProcess):
    """`radbill enforcement run` as deployed, output captured."""

    def __init__(self, database_url: str, data_dir: Path, **env: str) -> None:
        self.env = {**os.environ, "RADBILL_DATABASE_URL": database_url,
                    "RADBILL_DATA_DIR": str(data_dir), **env}
        self.lines = []

    def start(self) -> EnforcementWorker:
        self._spawn("enforcement", "run")
        return self


def wait_until(fetch, accept, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Call *fetch* until *accept* holds for its result; return that result."""
    def attempt():  # type: ignore[no-untyped-def]
        value = fetch()
        return (value,) if accept(value) else None

    return wait_for(attempt, timeout, interval)[0]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll *predicate* until it returns something truthy; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
