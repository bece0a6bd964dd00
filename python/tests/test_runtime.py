"""The runtime from Python: errors as exceptions (ValueError / RuntimeError / ConnectionError,
never a hang), two client processes at once on real `gt dispatcher` + `gt worker` processes,
signal scopes (seen in the dispatcher's instruction log), debug views and gpu_workers."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gt
from conftest import GT_BIN, run_py


def test_value_errors_name_the_op_and_shapes():
    a, b = gt.ones(2, 3), gt.ones(4, 5)
    with pytest.raises(ValueError, match=r"matmul.*\[2, 3\].*\[4, 5\]"):
        a @ b
    with pytest.raises(ValueError, match="add"):
        a + b
    with pytest.raises(ValueError, match="axis"):
        a.sum(axis=5)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 4)
    with pytest.raises(ValueError, match="dtype"):
        gt.ones(2, dtype=gt.int64).exp()
    with pytest.raises(ValueError, match="unknown dtype"):
        gt.zeros(2, dtype="complex64")
    with pytest.raises(ValueError, match="item"):
        a.item()
    with pytest.raises(ValueError, match="negative"):
        gt.zeros(-1)
    with pytest.raises(ValueError, match="cat"):
        gt.cat([a, b], axis=0)
    with pytest.raises(TypeError):
        a + "x"
    with pytest.raises(TypeError):
        gt.cat([a, 1])


def test_no_dispatcher_is_a_connection_error_without_hanging():
    code = textwrap.dedent("""
        import gt
        try:
            gt.connect("127.0.0.1:1")
        except ConnectionError as e:
            print("connect:", type(e).__name__)
        try:
            gt.randn(2)
        except ConnectionError as e:
            print("GT_ADDR:", type(e).__name__)
    """)
    r = run_py(code, env={"GT_ADDR": "127.0.0.1:1"}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "connect: ConnectionError" in r.stdout and "GT_ADDR: ConnectionError" in r.stdout


CLIENT = textwrap.dedent("""
    import sys
    import numpy as np
    import gt
    import gt.nn as nn
    if sys.argv[1] == "connect":
        gt.connect(sys.argv[2])
    seed = int(sys.argv[3])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    tx, tw = gt.from_numpy(x), gt.from_numpy(w).requires_grad_()
    for _ in range(20):
        loss = ((tx @ tw) ** 2).mean()
        loss.backward()
        with gt.no_grad():
            tw -= 0.05 * tw.grad
            tw.grad.zero_()
    for _ in range(20):
        g = 2 * x.T @ (x @ w) / (x.shape[0] * w.shape[1])
        w = w - 0.05 * g
    np.testing.assert_allclose(tw.numpy(), w, rtol=1e-4, atol=1e-5)
    with gt.signal.context(f"client{seed}"):
        y = (tx @ tw).relu().sum()
    print("ok", seed, round(float(y.item()), 4))
""")


def test_two_client_processes_share_a_dispatcher(cluster, tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, "connect", cluster.addr, "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", CLIENT, "env", "", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"GT_ADDR": cluster.addr, "PATH": "/usr/bin:/bin"}),
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert outs[0][0].startswith("ok 1") and outs[1][0].startswith("ok 2")


def test_lost_worker_is_a_runtime_error(cluster):
    code = textwrap.dedent("""
        import sys
        import gt
        gt.connect(sys.argv[1])
        x = gt.randn(4)
        x.numpy()
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            (x + 1).numpy()
            print("no error")
        except RuntimeError as e:
            print("RuntimeError:", e)
    """)
    p = subprocess.Popen([sys.executable, "-c", code, cluster.addr], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    cluster.workers[0].kill()
    cluster.workers[0].wait()
    out, err = p.communicate("go\n", timeout=60)
    assert p.returncode == 0, err
    assert out.startswith("RuntimeError:") and "worker" in out, out


def test_signal_scopes_reach_the_dispatcher(tmp_path):
    log = tmp_path / "gt.log"
    d = subprocess.Popen([str(GT_BIN), "dispatcher", "--listen", "127.0.0.1:0", "--log", str(log)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    w = None
    try:
        addr = d.stdout.readline().strip().rsplit(" ", 1)[-1]
        w = subprocess.Popen([str(GT_BIN), "worker", "--connect", addr, "--threads", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code = textwrap.dedent("""
            import sys
            import gt
            gt.connect(sys.argv[1])
            with gt.signal.context("layer1"):
                x = gt.randn(4) * 2
            gt.signal.enter("layer2")
            y = x + 1
            gt.signal.exit()
            y.numpy()
            try:
                gt.signal.exit()
            except RuntimeError:
                print("unbalanced exit refused")
        """)
        r = run_py(code, args=(addr,), timeout=60)
        assert r.returncode == 0, r.stderr
        assert "unbalanced exit refused" in r.stdout
    finally:
        for p in (w, d):
            if p:
                p.kill()
                p.wait()
    text = log.read_text()
    assert "ScopeEnter" in text and "name=layer1" in text and "name=layer2" in text
    assert "ScopeExit" in text


def test_debug_tape_and_worker_stats(capsys):
    x = gt.randn(3, 3, requires_grad=True)
    y = (x @ x).relu()
    tape = gt.debug.get_tape()
    assert any(e["op"] == "matmul" and e["shape"] == (3, 3) for e in tape)
    gt.debug.print_tape()
    assert "matmul" in capsys.readouterr().out
    y.numpy()
    stats = gt.debug.get_worker_stats()
    assert stats and stats[0]["alive"] and stats[0]["ops_executed"] > 0
    assert "hotpath" in stats[0] and "compile" in stats[0]
    assert stats[0]["ops_by_kind"]["matmul"] >= 1, stats[0]["ops_by_kind"]
    gt.debug.print_worker_stats()
    out = capsys.readouterr().out
    assert "executed:" in out and "by kind:" in out and "hot path:" in out, out


def test_gpu_workers_sets_the_embedded_worker_count():
    code = textwrap.dedent("""
        import gt
        gt.gpu_workers(2)
        x = gt.randn(2)
        print(len(gt.debug.get_worker_stats()))
        try:
            gt.gpu_workers(3)
        except ValueError as e:
            print("late:", e)
    """)
    r = run_py(code, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "2" and lines[1].startswith("late:")


def test_sync_and_manual_seed():
    gt.manual_seed(7)
    a = gt.randn(4).numpy()
    gt.manual_seed(7)
    b = gt.randn(4).numpy()
    np.testing.assert_array_equal(a, b)
    gt.sync()


def test_load_config_shards_work_over_two_workers(tmp_path):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text("batch:\n  shard:\n    axis: 0\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch:\n  shard:\n    axis: 0\n    wrokers: [0]\n")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import gt
        gt.gpu_workers(2)
        try:
            gt.load_config(sys.argv[2])
        except ValueError as e:
            print("refused:", e)
        gt.load_config(sys.argv[1])
        data = np.arange(24, dtype=np.float32).reshape(6, 4)
        with gt.signal.context("batch"):
            x = gt.from_numpy(data)
        y = (x * 2 + 1).sum(axis=1)
        assert np.array_equal(y.numpy(), (data * 2 + 1).sum(axis=1)), y.numpy()
        per_worker = {w["worker"]: dict(w["ops_by_name"]) for w in gt.debug.get_worker_stats()}
        print("mul on", sorted(w for w, ops in per_worker.items() if ops.get("mul", 0) > 0))
    """)
    r = run_py(code, args=(str(cfg), str(bad)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "wrokers" in r.stdout, r.stdout
    assert "mul on [0, 1]" in r.stdout, r.stdout
