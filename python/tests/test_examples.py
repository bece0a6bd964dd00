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


def test_prototype_benchmark_code_runs_unchanged():
    """The seed benchmark's GT half (shared/bench/anchor_bench.py, prototype API: `from gt.client
    import nn`, `nn.relu`, `loss.data.numpy()`, `p -= 0.01 * p.grad`), run as it is written."""
    import os
    from pathlib import Path

    path = Path(os.environ.get("GT_ANCHOR_BENCH", ROOT.parent / "shared" / "bench" / "anchor_bench.py"))
    if not path.exists():
        import pytest

        pytest.skip(f"{path} is not beside this checkout")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import anchor_bench as ab\n"
        "print(sorted(ab.micro_gt(200)))\n"
        "for name, fn in ab.make_gt_workloads():\n"
        "    v = [float(fn()) for _ in range(3)]\n"
        "    print(name, v)\n"
    )
    out = run("-c", code, str(path.parent))
    assert "add_16x16_us_per_op" in out
    for name in ("Simple Matmul Chain", "MLP Training Step", "Attention Block", "Mixed Operations"):
        assert name in out
