"""Nearest neighbours for t-SNE on GloVe 50-d: exact brute force against approximate indexes.

Every method runs in its own fresh process, twice in a row: the first call pays imports
and numba compilation (or loading from numba's cache), the second is the warm figure.
``pynndescent-cold`` runs with an empty numba cache (NUMBA_CACHE_DIR pointed at a new
folder), as a user's very first run would. Recall is the mean fraction of the exact k
nearest neighbours that a method found. k = 3 * perplexity = 90 by default.

    python scripts/bench_neighbors.py                       # N = 5k, 20k, 70k
    python scripts/bench_neighbors.py --sizes 5000 --metric cosine

The threshold of ``method="auto"`` in embedviz/tsne/affinity.py comes from this table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METHODS = ("exact", "pynndescent", "pynndescent-cold", "opentsne-annoy")


def _search(method: str, X: np.ndarray, k: int, metric: str, n_jobs: int):
    if method == "exact":
        from embedviz.tsne.affinity import nearest_neighbors

        return nearest_neighbors(X, k, metric=metric, method="exact", n_jobs=n_jobs)[0]
    if method.startswith("pynndescent"):
        from embedviz.tsne.affinity import nearest_neighbors

        return nearest_neighbors(
            X, k, metric=metric, method="approx", random_state=0, n_jobs=n_jobs
        )[0]
    if method == "opentsne-annoy":
        from openTSNE.nearest_neighbors import Annoy

        return Annoy(X, k, metric=metric, n_jobs=n_jobs, random_state=0).build()[0]
    raise SystemExit(f"unknown method {method!r}")


def worker(args) -> None:
    """Time one method twice in this (fresh) process; print one JSON line."""
    sys.path.insert(0, str(HERE))
    from _glove import load_glove

    _, X = load_glove(args.n)
    X = np.asarray(X, dtype=np.float64)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        idx = _search(args.method, X, args.k, args.metric, args.n_jobs)
        times.append(time.perf_counter() - t0)
    np.save(args.save, np.asarray(idx, dtype=np.int64))
    print(json.dumps({"first": times[0], "warm": times[1]}))


def _recall(idx: np.ndarray, ref: np.ndarray) -> float:
    hits = sum(len(set(a).intersection(b)) for a, b in zip(idx, ref, strict=True))
    return hits / ref.size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 70000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--k", type=int, default=90)
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--worker", metavar="METHOD", dest="method", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.method:
        worker(args)
        return 0

    load = os.getloadavg()[0]
    print(f"GloVe 50-d, k={args.k}, metric={args.metric}, n_jobs={args.n_jobs}, load {load:.1f}")
    print(f"{'N':>7} {'method':<18} {'first call s':>12} {'warm s':>8} {'recall':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            ref = None
            methods = ["exact"] + [m for m in args.methods if m != "exact"]
            for method in methods:
                env = dict(os.environ)
                if method == "pynndescent-cold":
                    env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(dir=tmp)
                save = Path(tmp) / f"{method}-{n}.npy"
                cmd = [sys.executable, __file__, "--worker", method, "--n", str(n)]
                cmd += ["--k", str(args.k), "--metric", args.metric]
                cmd += ["--n-jobs", str(args.n_jobs), "--save", str(save)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode:
                    print(f"{n:>7} {method:<18} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                idx = np.load(save)
                if method == "exact":
                    ref = idx
                recall = _recall(idx, ref) if ref is not None else float("nan")
                print(
                    f"{n:>7} {method:<18} {result['first']:>12.2f} {result['warm']:>8.2f} "
                    f"{recall:>7.4f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
