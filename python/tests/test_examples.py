"""The Python examples and the benchmark script, in their short modes."""

import subprocess
import sys

from conftest import ROOT


def run(*args):
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_train_mlp_short():
    out = run("examples/python/train_mlp.py", "--epochs", "20")
    assert "epoch   20  loss" in out and "accuracy" in out


def test_train_transformer_short():
    out = run("examples/python/train_transformer.py", "--steps", "3")
    assert "vocabulary" in out and "step    3  loss" in out and out.splitlines()[-1].startswith("sample: Shall I ")


def test_bench_quick():
    out = run("python/bench/bench.py", "--quick")
    assert "add_16x16_us_per_op" in out and "Mixed Operations" in out
