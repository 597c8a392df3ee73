"""The focal group pipeline (spec steps 1-4, 7, 9: grpo) vectorized in float64 numpy, for equal
groups and no absent scores: the reference a Python trainer could write in a few lines, written
as numpy is fast (batched matmul, in place; broadcasting the products instead makes ~10 fresh
8 MB temporaries a call and runs ~10x slower here). Timed as bench/step-calls.js times the engine.
Prints one JSON line. Usage: numpy_focal.py <k> <n> <group> [scores.f32: score that file once and
print the rewards instead]"""
import json, sys, time
import numpy as np

k, n, m = (int(a) for a in sys.argv[1:4])
g = n // m
b = np.array([1 + (c % 3) for c in range(k)], dtype=np.float64)
b /= b.sum()
gamma, eps, tau, adv_eps = 3.0, 0.05, 1.0, 1e-6
rng = np.random.default_rng(42)

def score(scores):
    u = scores.astype(np.float64).reshape(g, m, k)
    np.clip(u, 0.0, 1.0, out=u)
    z = u @ b                                            # (g, m) direct rewards
    z /= tau
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z, out=z)                                 # tilt, softmax per group
    s = np.matmul(p[:, None, :], u)[:, 0, :]
    s /= p.sum(axis=1, keepdims=True)
    np.clip(s, 0.0, 1.0, out=s)
    f = b * (1.0 - s + eps) ** gamma
    f /= f.sum(axis=1, keepdims=True)
    r = np.matmul(u, f[:, :, None])[:, :, 0]
    a = (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, ddof=1, keepdims=True) + adv_eps)
    return r.astype(np.float32).ravel(), a.astype(np.float32).ravel(), f.astype(np.float32)

if len(sys.argv) > 4:
    rewards = score(np.fromfile(sys.argv[4], dtype=np.float32).reshape(n, k))[0]
    print(json.dumps(rewards.tolist()))
    sys.exit()
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
