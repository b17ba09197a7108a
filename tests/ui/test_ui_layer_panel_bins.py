"""The model page when the number of histogram bins changes during a run (issue 5,
review 6 finding 3): the latest histogram is shown, and one note says that older ones
with another number of bins are left out of the slider and the bands."""

from __future__ import annotations

import numpy as np
import pytest

from embedviz.stats.records import Histogram, ParamStats, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.pages.model import build_model


def _update(iteration: int, bins: int, update_bins: int) -> Update:
    def hist(n: int, shift: int) -> Histogram:
        return Histogram(-1.0, 1.0 + iteration, [(iteration + shift + j) % 5 for j in range(n)])

    return Update(
        "run",
        "0",
        iteration,
        float(iteration),
        score=1.0,
        params={"fc.weight": ParamStats(0.0, 1.0, 0.8, update_mean_magnitude=1e-3)},
        histograms={
            "params": {"fc.weight": hist(bins, 0)},
            "updates": {"fc.weight": hist(update_bins, 1)},
        },
    )


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    st = (
        InMemoryStatsStorage()
        if request.param == "memory"
        else SQLiteStatsStorage(tmp_path / "r.db")
    )
    yield st
    st.close()


def _run_deferred(page) -> None:
    for read, fill in page.deferred:
        fill(read())


def test_latest_histogram_shown_and_the_older_ones_named_in_one_note(storage):
    # parameters: 30 bins at 0 and 10, then 50 bins; updates: 20 bins throughout but
    # the first, so the updates kind leaves one out when it is chosen later
    storage.put_many([_update(10 * i, 30 if i < 2 else 50, 7 if i == 0 else 20) for i in range(5)])
    storage.flush()
    page = build_model(storage, "run")
    _run_deferred(page)
    hists = storage.get_histograms("run", "0", "params", "fc.weight")
    latest_it, latest = hists[-1]
    show = page.sources["layer:hist:params:fc.weight:show"].data
    assert list(show["top"]) == latest.counts  # the newest, 50 bins
    np.testing.assert_allclose(show["left"], latest.edges()[:-1])
    assert page.sources["layer:params:slider"].value == latest_it
    kept = [it for it, h in hists if len(h.counts) == len(latest.counts)]
    assert list(page.sources["layer:hist:params:fc.weight:bands"].data["x"]) == kept
    note = page.layout.select_one({"name": "layer:hist_left_out"})
    assert note.visible
    assert "Left out: 2 older histograms (parameters fc.weight)" in note.text
    page.sources["layer:hist_kind"].active = 1  # updates, read when chosen
    ups = storage.get_histograms("run", "0", "updates", "fc.weight")
    assert list(page.sources["layer:hist:updates:fc.weight:show"].data["top"]) == ups[-1][1].counts
    assert "Left out: 3 older histograms (parameters fc.weight, updates fc.weight)" in note.text


def test_no_note_when_every_histogram_has_the_same_number_of_bins(storage):
    storage.put_many([_update(10 * i, 30, 20) for i in range(3)])
    storage.flush()
    page = build_model(storage, "run")
    _run_deferred(page)
    note = page.layout.select_one({"name": "layer:hist_left_out"})
    assert not note.visible and note.text == ""
    bands = page.sources["layer:hist:params:fc.weight:bands"].data
    assert list(bands["x"]) == [0, 10, 20]


def test_live_histograms_with_another_number_of_bins_replace_the_held_ones(storage):
    # the page is open when the number of bins changes: the next refresh shows the new
    # histograms (it kept the old number and dropped every new one), the bands and the
    # slider start again from them and the note counts the histograms dropped
    storage.put_many([_update(10 * i, 30, 20) for i in range(3)])
    storage.flush()
    page = build_model(storage, "run")
    _run_deferred(page)
    show = page.sources["layer:hist:params:fc.weight:show"]
    assert len(show.data["top"]) == 30
    storage.put_many([_update(10 * i, 50, 20) for i in range(3, 5)])
    storage.flush()
    assert page.refresh() > 0
    hists = storage.get_histograms("run", "0", "params", "fc.weight")
    assert [len(h.counts) for _, h in hists] == [30, 30, 30, 50, 50]
    assert list(show.data["top"]) == hists[-1][1].counts
    np.testing.assert_allclose(show.data["left"], hists[-1][1].edges()[:-1])
    slider = page.sources["layer:params:slider"]
    assert (slider.start, slider.value) == (30, 40) and not slider.disabled
    assert list(page.sources["layer:hist:params:fc.weight:bands"].data["x"]) == [30, 40]
    note = page.layout.select_one({"name": "layer:hist_left_out"})
    assert note.visible
    assert "Left out: 3 older histograms (parameters fc.weight)" in note.text
    slider.value = 30  # back through time: the new histograms only
    assert list(show.data["top"]) == hists[3][1].counts
    # more with the new number of bins: appended, the slider where it was
    storage.put_many([_update(50, 50, 20)])
    storage.flush()
    assert page.refresh() > 0
    assert list(page.sources["layer:hist:params:fc.weight:bands"].data["x"]) == [30, 40, 50]
    assert (slider.start, slider.end, slider.value) == (30, 50, 30)
    assert list(show.data["top"]) == hists[3][1].counts
    assert "Left out: 3 older histograms" in note.text
