"""Shared pieces of the t-SNE benchmark: data, reference affinities, quality measures.

Everything here is computed the same way for every method, independently of all of
them, so that the numbers in the table are comparable:

* the reference input affinities ``P``: exact Euclidean nearest neighbours (brute force),
  ``k = 3 * perplexity`` of them, a Gaussian per point calibrated to the perplexity by
  bisection, symmetrised as ``(P_cond + P_cond.T) / (2N)`` (van der Maaten 2014);
* the KL divergence ``KL(P || Q)`` of a final embedding, *exact*: ``Q`` normalised over all
  ``N(N - 1)`` pairs (an O(N^2) numba loop, no Barnes-Hut or FFT approximation);
* 10-NN preservation: the share of each point's 10 nearest input neighbours that are among
  its 10 nearest neighbours in the embedding;
* trustworthiness (Venna and Kaski 2001) from scikit-learn, 10 neighbours, on a fixed
  random subsample of at most 5,000 points.
"""

import hashlib
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse

PERPLEXITY = 30.0


def load_data(n: int) -> np.ndarray:
    """The ``n`` most frequent GloVe 6B 50-d word vectors as float64 (N, 50)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _glove import load_glove

    _, vectors = load_glove(n)
    if vectors.shape[0] < n:
        raise SystemExit(f"GloVe has only {vectors.shape[0]} words; asked for {n}")
    return np.ascontiguousarray(vectors, dtype=np.float64)


# -- reference affinities -------------------------------------------------------------


def exact_neighbors(X: np.ndarray, k: int, n_jobs: int = 2):
    """Exact Euclidean k nearest neighbours (self excluded): (indices int64, distances)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=n_jobs).fit(X)
    distances, indices = nn.kneighbors()  # query=None: each point's own row is excluded
    return indices.astype(np.int64), distances.astype(np.float64)


def calibrate(sq_distances: np.ndarray, perplexity: float, tol: float = 1e-6, max_tries=200):
    """Row-wise Gaussian conditionals with the given perplexity (vectorised bisection)."""
    d = sq_distances - sq_distances[:, :1]  # shift by the nearest: same P, no underflow
    n = d.shape[0]
    target = np.log(perplexity)
    beta = np.ones(n)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    for _ in range(max_tries):
        w = np.exp(-d * beta[:, None])
        s = w.sum(axis=1)
        p = w / s[:, None]
        entropy = np.log(s) + beta * (d * p).sum(axis=1)
        err = entropy - target
        if np.all(np.abs(err) < tol):
            break
        too_flat = err > 0  # entropy too high: sharpen (raise beta)
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(
            too_flat, np.where(np.isinf(hi), beta * 2.0, (beta + hi) / 2.0), (beta + lo) / 2.0
        )
    return p


def reference(n: int, X: np.ndarray, cache_dir: Path, perplexity: float = PERPLEXITY):
    """Exact neighbours and the reference P for the first ``n`` GloVe rows (cached on disk)."""
    k = min(n - 1, int(3 * perplexity))
    digest = hashlib.sha1(np.ascontiguousarray(X[: min(n, 1000)]).tobytes()).hexdigest()[:10]
    path = cache_dir / f"glove50_n{n}_k{k}_perp{perplexity:g}_{digest}.npz"
    if path.exists():
        z = np.load(path)
        P = scipy.sparse.csr_matrix((z["data"], z["pind"], z["pptr"]), shape=(n, n))
        return z["indices"], z["distances"], P
    indices, distances = exact_neighbors(X, k)
    p_cond = calibrate(distances**2, perplexity)
    rows = np.repeat(np.arange(n), k)
    Pc = scipy.sparse.csr_matrix((p_cond.ravel(), (rows, indices.ravel())), shape=(n, n))
    P = ((Pc + Pc.T) / (2.0 * n)).tocsr()
    P.sum_duplicates()
    P.sort_indices()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, indices=indices, distances=distances, data=P.data, pind=P.indices, pptr=P.indptr)
    os.replace(tmp, path)
    return indices, distances, P


# -- quality ----------------------------------------------------------------------------

_kernel = None


def _row_sums_kernel():
    """Compile (once, cached) the O(N^2) per-row sums of 1 / (1 + |y_i - y_j|^2)."""
    global _kernel
    if _kernel is None:
        from numba import njit, prange

        @njit(parallel=True, cache=True, fastmath=False)
        def row_sums(Y, out):  # pragma: no cover - compiled
            n, dim = Y.shape
            for i in prange(n):
                s = 0.0
                for j in range(n):
                    d2 = 0.0
                    for c in range(dim):
                        t = Y[i, c] - Y[j, c]
                        d2 += t * t
                    s += 1.0 / (1.0 + d2)
                out[i] = s - 1.0  # drop j == i
            return out

        _kernel = row_sums
    return _kernel


def exact_kl(P: scipy.sparse.csr_matrix, Y: np.ndarray) -> float:
    """Exact KL(P || Q) of embedding ``Y`` (Student-t Q over all pairs, no approximation)."""
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    Z = float(_row_sums_kernel()(Y, np.empty(Y.shape[0])).sum())  # per-row sums, then serial
    coo = P.tocoo()
    keep = coo.data > 0
    rows, cols, p = coo.row[keep], coo.col[keep], coo.data[keep]
    d2 = ((Y[rows] - Y[cols]) ** 2).sum(axis=1)
    log_q = -np.log1p(d2) - np.log(Z)
    return float(np.sum(p * (np.log(p) - log_q)))


def knn_preservation(input_indices: np.ndarray, Y: np.ndarray, k: int = 10) -> float:
    """Mean share of each point's k nearest input neighbours among its k nearest in ``Y``."""
    from sklearn.neighbors import NearestNeighbors

    emb = NearestNeighbors(n_neighbors=k).fit(Y).kneighbors(return_distance=False)
    ref = input_indices[:, :k]
    hits = (emb[:, :, None] == ref[:, None, :]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


def trustworthiness(X: np.ndarray, Y: np.ndarray, max_points: int = 5000, seed: int = 0):
    """scikit-learn's trustworthiness (10 neighbours) on a fixed subsample of the points."""
    from sklearn.manifold import trustworthiness as sk_trust

    n = X.shape[0]
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
        X, Y = X[idx], Y[idx]
    return float(sk_trust(X, Y, n_neighbors=10))


# -- the machine ------------------------------------------------------------------------


def machine_info() -> dict:
    """nproc, CPU model, RAM, load, Python and library versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for name in ("numpy", "scipy", "numba", "sklearn", "openTSNE", "pynndescent"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # not installed
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def source_state() -> dict:
    """The commit and a hash of embedviz's t-SNE sources (kernels/, embedviz/tsne/) now.

    Recorded before and after a run: if the sources changed in between (a shared working
    tree), numba recompiled in the middle and the embedviz timings after that are suspect.
    """
    import subprocess

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha1()
    for path in sorted([*root.glob("kernels/*.py"), *root.glob("embedviz/tsne/*.py")]):
        h.update(path.name.encode() + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %cI %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "kernels", "embedviz/tsne"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", []
    return {"head": head, "sources_sha1": h.hexdigest()[:12], "dirty": [d for d in dirty if d]}


def loadavg() -> float:
    """1-minute load average (other processes on the machine show up here)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: VmHWM of /proc/self/status.

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a child started by a
    large parent reports at least the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- the report (markdown, pasted into BENCHMARKS.md) ------------------------------------

# (dims, N, peer, time ratio bar) from issue 2; quality bars apply to each
TIME_TARGETS = (
    (2, 20000, "opentsne-bh", 0.2),
    (2, 70000, "opentsne-fft", 0.5),
    (3, 5000, "opentsne-bh", 0.2),
    (3, 5000, "sklearn", 0.15),
    (3, 20000, "opentsne-bh", 0.2),
    (3, 20000, "sklearn", 0.15),
)
KL_BAR, QUALITY_BAR = 1.01, 0.005
FIELDS = (
    "nn_aff_s",
    "optimize_s",
    "total_s",
    "fit_cpu_s",
    "kl",
    "kl_own",
    "knn10",
    "trust",
    "peak_rss_mib",
)


def summarise(runs: list) -> dict:
    """{(dims, n, method): median of each field over the repeats that succeeded}."""
    groups = {}
    for r in runs:
        if "error" not in r:
            groups.setdefault((r["dims"], r["n"], r["method"]), []).append(r)
    out = {}
    for key, rows in groups.items():
        agg = {f: float(np.median([r[f] for r in rows])) for f in FIELDS}
        agg["cpu_per_wall"] = float(np.median([r["fit_cpu_s"] / r["total_s"] for r in rows]))
        agg["load"] = float(np.median([r["loadavg_before"] for r in rows]))
        agg["repeats"] = len(rows)
        agg["peak_ok"] = all(r.get("peak_source") == "VmHWM" for r in rows)
        out[key] = agg
    return out


def _peak(a):
    return f"{a['peak_rss_mib']:.0f}" + ("" if a["peak_ok"] else "†")


def _ratio_peak(ours, theirs):
    if not (ours["peak_ok"] and theirs["peak_ok"]):
        return "—"
    return f"{ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}×"


def print_report(results: dict) -> None:
    """Print the table, the ratios, the targets and the cold start as markdown."""
    s = summarise(results.get("runs", []))
    before, after = results.get("sources_before"), results.get("sources_after")
    if before:
        print(
            f"embedviz at {before['head']} (t-SNE sources {before['sources_sha1']}"
            f"{', uncommitted: ' + ' '.join(before['dirty']) if before['dirty'] else ''})\n"
        )
    if before and after and before["sources_sha1"] != after["sources_sha1"]:
        print(
            "WARNING: embedviz's t-SNE sources changed during the run (now "
            f"{after['sources_sha1']}): numba recompiled part-way, embedviz timings suspect\n"
        )
    print(
        "| dims | N | method | neighbours + P (s) | optimise (s) | other (s) | total (s) "
        "| CPU (s) | KL (exact) | KL (own) | 10-NN | trust. | peak RSS (MiB) | load |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (dims, n, method), a in sorted(s.items()):
        print(
            f"| {dims}D | {n:,} | {method} | {a['nn_aff_s']:.2f} | {a['optimize_s']:.2f} | "
            f"{a['total_s'] - a['nn_aff_s'] - a['optimize_s']:.2f} | "
            f"**{a['total_s']:.2f}** | {a['fit_cpu_s']:.1f} | {a['kl']:.4f} | {a['kl_own']:.4f} | "
            f"{a['knn10']:.4f} | {a['trust']:.4f} | {_peak(a)} | {a['load']:.1f} |"
        )
    if not all(a["peak_ok"] for a in s.values()):
        print(
            "\n† ru_maxrss, which Linux carries over from the parent process across fork and "
            "exec: at least the parent's size, not the run's own peak."
        )
    for r in results.get("runs", []):
        if "error" in r:
            print(f"\n{r['dims']}D N={r['n']} {r['method']}: FAILED: {r['error'][-300:]}")

    print(
        "\nRatios embedviz / peer (time, KL, memory: < 1 is better for embedviz; "
        "Δ = embedviz − peer, > 0 is better):\n"
    )
    print(
        "| dims | N | peer | total time | optimise time | CPU time | KL | Δ 10-NN | Δ trust. "
        "| peak RSS |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for (dims, n, method), a in sorted(s.items()):
        ours = s.get((dims, n, "embedviz"))
        if method == "embedviz" or ours is None:
            continue
        print(
            f"| {dims}D | {n:,} | {method} | {ours['total_s'] / a['total_s']:.3f}× | "
            f"{ours['optimize_s'] / a['optimize_s']:.3f}× | "
            f"{ours['fit_cpu_s'] / a['fit_cpu_s']:.3f}× | {ours['kl'] / a['kl']:.4f}× | "
            f"{ours['knn10'] - a['knn10']:+.4f} | {ours['trust'] - a['trust']:+.4f} | "
            f"{_ratio_peak(ours, a)} |"
        )

    print("\nTargets of issue 2:\n")
    print("| target | measured | met? |")
    print("|---|---|---|")
    for dims, n, peer, bar in TIME_TARGETS:
        ours, theirs = s.get((dims, n, "embedviz")), s.get((dims, n, peer))
        if ours is None or theirs is None:
            print(f"| {dims}D N={n:,}: total ≤ {bar}× {peer} | not run | — |")
            continue
        checks = [
            (f"total ≤ {bar}× {peer}", ours["total_s"] / theirs["total_s"], bar, "×"),
            (f"KL ≤ {KL_BAR}× {peer}", ours["kl"] / theirs["kl"], KL_BAR, "×"),
        ]
        for label, value, limit, unit in checks:
            print(
                f"| {dims}D N={n:,}: {label} | {value:.3f}{unit} "
                f"| {'met' if value <= limit else '**missed**'} |"
            )
        for field, name in (("knn10", "10-NN"), ("trust", "trustworthiness")):
            d = ours[field] - theirs[field]
            print(
                f"| {dims}D N={n:,}: {name} ≥ {peer} − {QUALITY_BAR} | {d:+.4f} "
                f"| {'met' if d >= -QUALITY_BAR else '**missed**'} |"
            )
    for peer in ("opentsne-fft", "opentsne-bh"):
        ours, theirs = s.get((2, 70000, "embedviz")), s.get((2, 70000, peer))
        if ours and theirs and ours["peak_ok"] and theirs["peak_ok"]:
            ok = ours["peak_rss_mib"] <= theirs["peak_rss_mib"]
            print(
                f"| 2D N=70,000: peak memory ≤ {peer} | {ours['peak_rss_mib']:.0f} vs "
                f"{theirs['peak_rss_mib']:.0f} MiB | {'met' if ok else '**missed**'} |"
            )
    cold = results.get("cold_start")
    if cold and "error" not in cold.get("cold", {}) and "error" not in cold.get("warm", {}):
        c, w = cold["cold"], cold["warm"]
        first = c["import_embedviz_s"] + c["import_s"] + c["fits_s"][0]
        print(
            f"| cold start (import + first fit, N={cold['n']:,}, empty numba cache) ≤ 15 s "
            f"| {first:.2f} s | {'met' if first <= 15 else '**missed**'} |"
        )
        extra = w["fits_s"][0] - w["fits_s"][1]
        print(
            f"| warm start adds ≤ 1 s (first fit − second fit in one process) | {extra:+.2f} s "
            f"| {'met' if extra <= 1 else '**missed**'} |"
        )
        files, sigs = c["cache_files_after_import"], c["compiled_after_import"]
        ok = files == 0 and sigs == 0
        print(
            "| `import embedviz` (and its t-SNE modules and kernels) compiles nothing | "
            f"{sigs} signatures compiled, {files} cache files written "
            f"| {'met' if ok else '**missed**'} |"
        )
        print(f"\nCold/warm start, N={cold['n']:,} 2D (each a fresh process):\n")
        print(
            "| numba cache | import embedviz / TSNE (s) | first fit: wall (CPU) s "
            "| second fit, same process: wall (CPU) s | cache files after fit "
            "| bokeh/torch imported |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for label, r in (("empty (cold)", c), ("filled (warm)", w)):
            print(
                f"| {label} | {r['import_embedviz_s']:.2f} / {r['import_s']:.2f} | "
                f"{r['fits_s'][0]:.2f} ({r['fits_cpu_s'][0]:.2f}) | "
                f"{r['fits_s'][1]:.2f} ({r['fits_cpu_s'][1]:.2f}) | "
                f"{r['cache_files_after_fit']} | {r['heavy_modules_after_import'] or 'no'} |"
            )
    elif cold:
        print(f"\ncold start FAILED: {cold}")
