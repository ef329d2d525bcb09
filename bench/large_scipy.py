"""The scipy yardstick of bench/large.bench.js (optional: the project never depends on Python).

Builds the same W x H multi-task gridworld as src/mdp/generate.ts's gridworldMdp (four slippery
moves, slip 0.1, gamma 0.9, goals at the corners S-1, W-1, (H-1)W, 0, reward 1 at the goal for every
action, rho uniform) and times, as a researcher would write them with scipy:
  - evaluation at theta = 0 (the uniform policy): P_pi as a CSR matrix, splu of I - gamma P_pi, the
    value solves of the N reward tables and the transposed solve of the occupancy;
  - value iteration on the average reward from V = 0, stopped by the same proven bound the project
    uses: |T V - V|_inf / (1 - gamma) <= 1e-12 max(1, |V|_inf).
Prints one JSON object: the median seconds of each over `reps` runs, plus J and J* for a check.
Usage: python3 bench/large_scipy.py WIDTH HEIGHT AGENTS REPS

With `load FILE REPS WARMUP` it times instead what a researcher does to read a CSR .npz MDP (the file
`fedpg generate ... --out FILE.npz` writes): np.load of every array plus building the
scipy.sparse.csr_matrix of the S*A x S kernel from indptr, indices and data, after one load of
the small file WARMUP (so that lazy imports and first calls are not timed). `cold_s` is the first
load of FILE in this (fresh) process, as a command line tool meets it; `warm_s` the median of the
later ones, whose memory the allocator hands back already mapped.
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def gridworld(W, H, N, slip=0.1, gamma=0.9):
    S, A = W * H, 4
    moves = [(0, -1), (1, 0), (0, 1), (-1, 0)]
    s = np.arange(S)
    x, y = s % W, s // W
    targets = []
    for dx, dy in moves:
        nx, ny = x + dx, y + dy
        off = (nx < 0) | (nx >= W) | (ny < 0) | (ny >= H)
        targets.append(np.where(off, s, ny * W + nx))
    rows, cols, vals = [], [], []
    for a in range(A):
        for b in range(A):
            p = (1 - slip if a == b else 0) + slip / A
            rows.append(s * A + a)
            cols.append(targets[b])
            vals.append(np.full(S, p))
    P = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(S * A, S))
    P.sum_duplicates()
    goals = list(dict.fromkeys([S - 1, W - 1, (H - 1) * W, 0]))[:N]
    R = np.zeros((N, S * A))
    for i, g in enumerate(goals):
        R[i, g * A:(g + 1) * A] = 1
    rho = np.full(S, 1.0 / S)
    return S, A, gamma, P, R, rho


def evaluate(S, A, gamma, P, R, rho):
    pi = np.full(S * A, 1.0 / A)
    Pi = sp.csr_matrix((pi, (np.repeat(np.arange(S), A), np.arange(S * A))), shape=(S, S * A))
    Ppi = (Pi @ P).tocsc()
    M = (sp.identity(S, format="csc") - gamma * Ppi).tocsc()
    lu = spla.splu(M)
    r_pi = (Pi @ R.T)  # S x N
    V = lu.solve(np.ascontiguousarray(r_pi))
    d = (1 - gamma) * lu.solve(rho, trans="T")
    return rho @ V, d


def value_iteration(S, A, gamma, P, r):
    V = np.zeros(S)
    while True:
        Q = (r + gamma * (P @ V)).reshape(S, A)
        TV = Q.max(axis=1)
        res = np.abs(TV - V).max()
        V = TV
        if res / (1 - gamma) <= 1e-12 * max(1.0, np.abs(V).max()):
            return rho_dot(V)


def rho_dot(V):
    return float(V.mean())


CPU = {}


def median_time(f, reps, name):
    """The median wall seconds of f over reps runs (and in CPU[name] the median CPU seconds)."""
    times, cpus, out = [], [], None
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        out = f()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU[name] = float(np.median(cpus))
    return float(np.median(times)), out


def load(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    S = arrays["initial"].shape[0]
    if "transitions" in arrays:  # a small MDP, written dense
        return arrays, sp.csr_matrix(arrays["transitions"].reshape(-1, S))
    P = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(arrays["indptr"].shape[0] - 1, S))
    return arrays, P


def main_load(path, reps, warmup):
    load(warmup)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _, P = load(path)
        times.append(time.perf_counter() - t)
        del P
    print(json.dumps({"cold_s": times[0], "warm_s": float(np.median(times[1:])) if reps > 1 else None,
                      "numpy": np.__version__, "scipy": __import__("scipy").__version__}))


def main():
    if sys.argv[1] == "load":
        return main_load(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    W, H, N, reps = (int(a) for a in sys.argv[1:5])
    S, A, gamma, P, R, rho = gridworld(W, H, N)
    t_eval, (J, _) = median_time(lambda: evaluate(S, A, gamma, P, R, rho), reps, "evaluate_cpu_s")
    rbar = R.mean(axis=0)
    t_vi, Jstar = median_time(lambda: value_iteration(S, A, gamma, P, rbar), reps, "value_iteration_cpu_s")
    print(json.dumps({"states": S, "evaluate_s": t_eval, "value_iteration_s": t_vi, **CPU, "J": [float(j) for j in J],
                      "Jstar": Jstar, "scipy": __import__("scipy").__version__}))


if __name__ == "__main__":
    main()
