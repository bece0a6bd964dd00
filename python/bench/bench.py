#!/usr/bin/env python3
"""Per-op cost of GT driven from Python, with same-run baselines.

    python3 python/bench/bench.py                 # micro + the four compile-benchmark workloads
    python3 python/bench/bench.py --json out.json
    GT_AUTO_COMPILE=1 python3 python/bench/bench.py   # once trace compilation exists

Micro: N x (a = a + b) on 16x16 and N x (c = x @ w) on 64x64, each timed until the final value
is read back, for GT, NumPy and (if installed) PyTorch eager. Workloads: the seed compile
benchmark's four (shapes and op sequences of shared/bench/anchor_bench.py), median seconds per
iteration, each ending with a host read; PyTorch eager alongside if installed. Compare ratios
within one run: these machines are noisy.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def micro_gt(gt, n):
    a = gt.randn(16, 16)
    b = gt.from_numpy((np.random.randn(16, 16) * 1e-3).astype("float32"))
    for _ in range(100):
        a = a + b
    a.numpy()
    t0 = time.perf_counter()
    for _ in range(n):
        a = a + b
    a.numpy()
    add = (time.perf_counter() - t0) / n * 1e6
    x, w = gt.randn(64, 64), gt.randn(64, 64)
    for _ in range(100):
        c = x @ w
    c.numpy()
    t0 = time.perf_counter()
    for _ in range(n):
        c = x @ w
    c.numpy()
    mm = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(200):
        a.numpy()
    read = (time.perf_counter() - t0) / 200 * 1e6
    return {"add_16x16_us_per_op": add, "matmul_64x64_us_per_op": mm, "read_16x16_us_per_call": read}


def micro_numpy(n):
    a = np.random.randn(16, 16).astype("float32")
    b = (np.random.randn(16, 16) * 1e-3).astype("float32")
    t0 = time.perf_counter()
    for _ in range(n):
        a = a + b
    add = (time.perf_counter() - t0) / n * 1e6
    x = np.random.randn(64, 64).astype("float32")
    w = np.random.randn(64, 64).astype("float32")
    t0 = time.perf_counter()
    for _ in range(n):
        c = x @ w
    float(c[0, 0])
    mm = (time.perf_counter() - t0) / n * 1e6
    return {"add_16x16_us_per_op": add, "matmul_64x64_us_per_op": mm}


def micro_torch(torch, n):
    a, b = torch.randn(16, 16), torch.randn(16, 16) * 1e-3
    for _ in range(100):
        a = a + b
    t0 = time.perf_counter()
    for _ in range(n):
        a = a + b
    float(a[0, 0])
    add = (time.perf_counter() - t0) / n * 1e6
    x, w = torch.randn(64, 64), torch.randn(64, 64)
    for _ in range(100):
        c = x @ w
    t0 = time.perf_counter()
    for _ in range(n):
        c = x @ w
    float(c[0, 0])
    mm = (time.perf_counter() - t0) / n * 1e6
    return {"add_16x16_us_per_op": add, "matmul_64x64_us_per_op": mm}


def workloads(lib, nn):
    """The four workloads, written once for any PyTorch-like `lib` (gt or torch)."""

    def w1():
        a = lib.randn(64, 64, requires_grad=True)
        b = lib.randn(64, 64, requires_grad=True)
        x = a @ b
        x = x @ b
        x = x @ b
        loss = x.sum()
        loss.backward()
        return loss.item()

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(32, 64)
            self.fc2 = nn.Linear(64, 32)
            self.fc3 = nn.Linear(32, 10)

        def forward(self, x):
            x = lib.relu(self.fc1(x))
            x = lib.relu(self.fc2(x))
            return self.fc3(x)

    model = MLP()
    data = lib.from_numpy(np.random.randn(16, 32).astype("float32"))
    target = lib.from_numpy(np.random.randn(16, 10).astype("float32"))

    def w2():
        pred = model(data)
        loss = ((pred - target) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad
                p.grad.zero_()
        return loss.item()

    def w3():
        x = lib.randn(4, 16, 64, requires_grad=True)
        wq = lib.randn(64, 64, requires_grad=True)
        wk = lib.randn(64, 64, requires_grad=True)
        wv = lib.randn(64, 64, requires_grad=True)
        xf = x.reshape(64, 64)
        q, k, v = xf @ wq, xf @ wk, xf @ wv
        out = (q @ k.T) @ v
        loss = out.sum()
        loss.backward()
        return loss.item()

    def w4():
        a = lib.randn(32, 32, requires_grad=True)
        b = lib.randn(32, 32, requires_grad=True)
        x = (a @ b).relu()
        x = (x + a) * b
        x = x.sum(1).mean()
        x.backward()
        return x.item()

    return [("Simple Matmul Chain", w1), ("MLP Training Step", w2),
            ("Attention Block", w3), ("Mixed Operations", w4)]


def time_steps(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "iters": iters}


def main():
    ap = argparse.ArgumentParser(description="GT per-op cost from Python, with NumPy/PyTorch baselines")
    ap.add_argument("--micro-n", type=int, default=10000, help="ops per micro benchmark (default 10000)")
    ap.add_argument("--iters", type=int, default=200, help="timed iterations per workload (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="warmup iterations per workload (default 20)")
    ap.add_argument("--quick", action="store_true", help="tiny counts (a smoke test, not a measurement)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.quick:
        args.micro_n, args.iters, args.warmup = 200, 3, 1

    import gt

    try:
        import torch
    except ImportError:
        torch = None
    env = {k: v for k, v in os.environ.items() if k.startswith("GT_")}
    res = {"env": env, "micro": {}, "workloads": {}}
    print(f"GT environment: {env or '(defaults)'}; torch: {torch.__version__ if torch else 'not installed'}")
    res["micro"]["gt"] = micro_gt(gt, args.micro_n)
    res["micro"]["numpy"] = micro_numpy(args.micro_n)
    if torch:
        res["micro"]["torch"] = micro_torch(torch, args.micro_n)
    print(f"{'per op (µs)':24s}" + "".join(f"{k:>10s}" for k in res["micro"]))
    for key in ("add_16x16_us_per_op", "matmul_64x64_us_per_op"):
        print(f"{key:24s}" + "".join(f"{m[key]:10.2f}" for m in res["micro"].values()))
    print(f"{'read_16x16_us_per_call':24s}{res['micro']['gt']['read_16x16_us_per_call']:10.2f}")

    libs = [("gt", gt, gt.nn)] + ([("torch", torch, torch.nn)] if torch else [])
    for lname, lib, nn in libs:
        for name, fn in workloads(lib, nn):
            res["workloads"].setdefault(name, {})[lname] = time_steps(fn, args.iters, args.warmup)
    print()
    print(f"{'workload (median ms)':24s}" + "".join(f"{n:>10s}" for n, _, _ in libs))
    for name, r in res["workloads"].items():
        print(f"{name:24s}" + "".join(f"{r[n]['median_s'] * 1e3:10.3f}" for n, _, _ in libs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
