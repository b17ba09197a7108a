"""numba's threading layer: a fit leaves it alone; prefer_workqueue() is opt-in and safe."""

import os
import subprocess
import sys

import pytest

# A fit, then the user's own parallel numba code from two Python threads at once: on
# the workqueue layer numba aborts the process ("Concurrent access has been detected").
_FIT_THEN_USER_THREADS = """
import threading
import numba
import numpy as np
from numba import njit, prange
from sklearn.datasets import load_digits
from embedviz import TSNE

TSNE(max_iter=5, random_state=0).fit(load_digits().data[:200])
print(numba.config.THREADING_LAYER, numba.threading_layer(), flush=True)

@njit(parallel=True)
def work(a):
    for r in range(100):
        for i in prange(a.shape[0]):
            a[i] = np.sqrt(a[i] + r)
    return a.sum()

a = np.ones(500_000)
work(a.copy())
threads = [threading.Thread(target=work, args=(a.copy(),)) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok")
"""

# Opt in, then two fits in two Python threads: embedviz's lock serialises them.
_OPT_IN_TWO_FITS = """
import threading
import numba
from sklearn.datasets import load_digits
from embedviz import TSNE
from embedviz.tsne import prefer_workqueue

chosen = prefer_workqueue()
X = load_digits().data[:200]
fits = [TSNE(max_iter=20, random_state=0) for _ in range(2)]
threads = [threading.Thread(target=f.fit, args=(X,)) for f in fits]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert all(f.embedding_.shape == (200, 2) for f in fits)
print(chosen, numba.threading_layer(), prefer_workqueue())
"""


def _run(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fit_leaves_the_threading_layer_to_numba():
    out = _run(_FIT_THEN_USER_THREADS)
    assert out.returncode == 0, out.stderr[-2000:]
    config, layer, ok = out.stdout.split()
    assert config == "default"  # not switched inside fit
    assert ok == "ok"


@pytest.mark.parametrize(
    "env, expected",
    [({}, "True workqueue False"), ({"NUMBA_THREADING_LAYER": "omp"}, "False omp False")],
)
def test_prefer_workqueue_is_opt_in_and_respects_the_user(env, expected):
    out = _run(_OPT_IN_TWO_FITS, **env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == expected
