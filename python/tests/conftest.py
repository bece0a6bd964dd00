"""Shared fixtures: the repository root, real `gt dispatcher` + `gt worker` processes (the built
target/release/gt), and running Python snippets as separate client processes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GT_BIN = Path(os.environ.get("GT_BIN", ROOT / "target" / "release" / "gt"))


def run_py(code, env=None, timeout=120, args=()):
    """Runs `code` in a fresh Python process; returns the CompletedProcess (text output)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GT_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


class Cluster:
    """A dispatcher on an ephemeral port with one worker, both real processes."""

    def __init__(self):
        if not GT_BIN.exists():
            pytest.fail(f"{GT_BIN} is missing: run `cargo build --release` (scripts/test does)")
        env = dict(os.environ, GT_HEARTBEAT_TIMEOUT_MS="1000")
        self.dispatcher = subprocess.Popen([str(GT_BIN), "dispatcher", "--listen", "127.0.0.1:0"],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           text=True, env=env)
        line = self.dispatcher.stdout.readline().strip()
        prefix = "gt dispatcher listening on "
        if not line.startswith(prefix):
            self.dispatcher.kill()
            pytest.fail(f"unexpected dispatcher output: {line!r}")
        self.addr = line[len(prefix):]
        self.workers = [self.add_worker()]

    def add_worker(self):
        return subprocess.Popen([str(GT_BIN), "worker", "--connect", self.addr, "--threads", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self):
        for p in [*self.workers, self.dispatcher]:
            p.kill()
            p.wait()


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
