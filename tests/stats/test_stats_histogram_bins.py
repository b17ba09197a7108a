"""Histograms whose number of bins changes during a run (issue 5, review 6 finding 3):
``get_histogram_arrays`` keeps the newest histograms' number of bins, so the model page's
"latest" is the latest, and says how many older ones it left out."""

from __future__ import annotations

import pytest

from embedviz.stats.base import HistogramArrays
from embedviz.stats.records import Histogram, Update


def _update(iteration: int, bins: int) -> Update:
    counts = [(iteration + 3 * j) % 7 for j in range(bins)]
    hist = Histogram(-1.0 - iteration, 1.0 + iteration, counts)
    hists = {"params": {"w": hist}}
    return Update("run", "0", iteration, float(iteration), score=1.0, histograms=hists)


@pytest.mark.parametrize(
    "bins",
    [
        [30, 30, 50, 50],  # the number of bins grew: the 50-bin ones are the newest
        [30, 50, 50, 30, 30],  # and back: the newest are 30-bin again
        [8, 8, 8],  # no change: nothing left out
    ],
)
def test_histogram_arrays_keep_the_newest_number_of_bins(storage, bins):
    storage.put_many([_update(10 * i, b) for i, b in enumerate(bins)])
    storage.flush()
    got = storage.get_histogram_arrays("run", "0", [("params", "w")])[("params", "w")]
    pairs = storage.get_histograms("run", "0", "params", "w")  # every histogram
    assert [it for it, _ in pairs] == [10 * i for i in range(len(bins))]
    # the reference: the histograms that have the newest one's number of bins
    want = [(it, h) for it, h in pairs if len(h.counts) == bins[-1]]
    assert got.iterations.tolist() == [it for it, _ in want]
    assert got.counts.tolist() == [h.counts for _, h in want]
    assert got.lo.tolist() == [h.lo for _, h in want]
    assert got.hi.tolist() == [h.hi for _, h in want]
    assert got.left_out == len(pairs) - len(want)
    assert got.iterations[-1] == pairs[-1][0]  # the latest histogram is there


def test_histogram_arrays_of_no_rows_is_empty():
    h = HistogramArrays.of([])
    assert h.counts.shape == (0, 0) and h.left_out == 0 and len(h.iterations) == 0
