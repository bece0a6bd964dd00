#!/usr/bin/env python3
"""Train a 4→8→1 MLP to tell whether the features of a sample sum to a positive number: 100
samples, sigmoid output, MSE loss, 100 epochs of SGD at lr 0.1 — written as a PyTorch user
would, with GT standing in for torch.

    python3 examples/python/train_mlp.py            # add --epochs 10 for a short run
"""

import argparse
import time

import gt as torch
import gt.nn as nn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(100, 4)
    y = (x.sum(dim=1, keepdim=True) > 0).float()

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    start = time.perf_counter()
    first = last = None
    for epoch in range(1, args.epochs + 1):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if epoch % 10 == 0 or epoch == args.epochs:
            last = loss.item()
            first = last if first is None else first
            print(f"epoch {epoch:>4}  loss {last:.4f}")

    with torch.no_grad():
        accuracy = ((model(x) > 0.5).float() == y).float().mean().item()
    print(
        f"trained {args.epochs} epochs in {time.perf_counter() - start:.2f}s: "
        f"loss {first:.4f} -> {last:.4f}, accuracy {accuracy * 100:.1f}%"
    )


if __name__ == "__main__":
    main()
