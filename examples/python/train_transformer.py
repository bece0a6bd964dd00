#!/usr/bin/env python3
"""A small character-level causal transformer trained on Shakespeare's sonnets
(data/sonnets.txt), then asked to write a line: the Python twin of
crates/gt/examples/train_transformer.rs (same model, data, optimizer and schedule).

    python3 examples/python/train_transformer.py    # add --steps 20 for a short run
"""

import argparse
import math
import os
import time

import numpy as np

import gt
import gt.nn as nn
import gt.nn.functional as F

BATCH = 16
CONTEXT = 32
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "sonnets.txt")


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention: dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = (z.reshape(b, t, h, d // h).permute(0, 2, 1, 3) for z in self.qkv(x).chunk(3, dim=-1))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
        r = gt.arange(0, t)
        causal = r.reshape(1, -1) > r.reshape(-1, 1)
        att = scores.masked_fill(causal, -math.inf).softmax(dim=-1)
        y = (att @ v).permute(0, 2, 1, 3).reshape(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, context, dim, heads, layers):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        t = ids.shape[1]
        if t > self.context:
            raise ValueError(f"gpt: {t} tokens exceed the context of {self.context}")
        x = self.tok(ids) + self.pos(gt.arange(0, t, dtype=gt.int64))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


class Rng:
    """xorshift64*, the Rust example's generator, so both draw the same batches."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        m = (1 << 64) - 1
        self.s ^= self.s >> 12
        self.s ^= (self.s << 25) & m
        self.s ^= self.s >> 27
        return (self.s * 0x2545F4914F6CDD1D) & m

    def below(self, n):
        return self.next() % n

    def unit(self):
        return (self.next() >> 11) / float(1 << 53)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    args = ap.parse_args()
    steps = args.steps

    gt.manual_seed(0)
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    model = Gpt(len(vocab), CONTEXT, dim=64, heads=4, layers=2)
    params = list(model.parameters())
    print(f"{len(data)} characters, vocabulary {len(vocab)}, {len(params)} parameter tensors; "
          f"{steps} steps of AdamW, batch {BATCH} x {CONTEXT}")
    opt = gt.optim.AdamW(params, lr=3e-3)
    schedule = gt.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=3e-4)
    rng = Rng(0x5EED)

    start = time.perf_counter()
    first = last = None
    for step in range(1, steps + 1):
        at = [rng.below(len(data) - CONTEXT - 1) for _ in range(BATCH)]
        x = np.stack([data[a:a + CONTEXT] for a in at])
        y = np.stack([data[a + 1:a + CONTEXT + 1] for a in at]).reshape(-1)
        opt.zero_grad()
        logits = model(gt.from_numpy(x)).reshape(BATCH * CONTEXT, -1)
        loss = F.cross_entropy(logits, gt.from_numpy(y))
        loss.backward()
        opt.step()
        schedule.step()
        if step % 25 == 0 or step == 1 or step == steps:
            last = loss.item()
            first = last if first is None else first
            print(f"step {step:>4}  loss {last:.3f}")
    secs = time.perf_counter() - start

    # Sample a line, one character at a time, at temperature 0.8.
    out = [index[c] for c in "Shall I "]
    with gt.no_grad():
        for _ in range(80):
            window = out[-CONTEXT:]
            logits = model(gt.tensor([window]))[0, -1]
            probs = (logits / 0.8).softmax(-1).numpy().astype(np.float64)
            u = rng.unit()
            nxt = len(probs) - 1
            for i, p in enumerate(probs):
                u -= p
                if u <= 0:
                    nxt = i
                    break
            if vocab[nxt] == "\n":
                break
            out.append(nxt)
    print(f"trained {steps} steps in {secs:.1f}s ({secs * 1e3 / steps:.1f} ms/step): loss {first:.3f} -> {last:.3f}")
    print("sample: " + "".join(vocab[i] for i in out))


if __name__ == "__main__":
    main()
