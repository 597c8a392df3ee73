"""The focal group pipeline (spec steps 1-4, 7, 9: grpo) vectorized in float64 numpy, for equal
groups and no absent scores: the reference a Python trainer could write in a few lines. Timed as
bench/step-calls.js times the engine. Prints one JSON line. Usage: numpy_focal.py <k> <n> <group>"""
import json, sys, time
import numpy as np

k, n, m = (int(a) for a in sys.argv[1:4])
g = n // m
b = np.array([1 + (c % 3) for c in range(k)], dtype=np.float64)
b /= b.sum()
gamma, eps, tau, adv_eps = 3.0, 0.05, 1.0, 1e-6
rng = np.random.default_rng(42)

def score(scores):
    u = np.clip(scores.astype(np.float64).reshape(g, m, k), 0.0, 1.0)
    d = u @ b                                            # (g, m) direct rewards
    z = d / tau
    p = np.exp(z - z.max(axis=1, keepdims=True))         # tilt, softmax per group
    s = (p[:, :, None] * u).sum(axis=1) / p.sum(axis=1, keepdims=True)
    f = b * (1.0 - np.clip(s, 0.0, 1.0) + eps) ** gamma
    f /= f.sum(axis=1, keepdims=True)
    r = (u * f[:, None, :]).sum(axis=2)
    a = (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, ddof=1, keepdims=True) + adv_eps)
    return r.astype(np.float32).ravel(), a.astype(np.float32).ravel(), f.astype(np.float32)

first = []
for step in range(10):
    scores = rng.random((n, k), dtype=np.float32)
    t = time.perf_counter()
    score(scores)
    first.append((time.perf_counter() - t) * 1e3)
    time.sleep(0.03)
steady = []
for i in range(50):
    t = time.perf_counter()
    score(scores)
    steady.append((time.perf_counter() - t) * 1e3)
steady.sort()
print(json.dumps({"backend": "numpy", "first": first, "steady": steady[len(steady) // 2], "numpy": np.__version__}))
