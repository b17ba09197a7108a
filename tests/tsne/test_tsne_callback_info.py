"""The extended callback form (review 6 finding 28): ``wants_info`` is documented where
users look, TSNE's ``callbacks`` parameter, with every key of the ``info`` it gets."""

from __future__ import annotations

import re

import numpy as np
from tsne_quick import quick

from embedviz import TSNE


def test_every_info_key_a_callback_gets_is_documented_in_tsne(small):
    got = []

    def record(iteration, kl, embedding, info):
        got.append(info)

    record.wants_info = True
    quick(max_iter=60, stop_lying_iter=30, callbacks=[record], callback_every=30, n_jobs=1).fit(
        small[:100]
    )
    assert [i["phase"] for i in got] == ["exaggeration", "main"]
    doc = " ".join(TSNE.__doc__.split())  # the numpydoc text, one line
    param = doc[doc.index("callbacks :") : doc.index("callback_every :")]
    assert "wants_info = True" in param
    for key in got[0]:
        assert re.search(rf"``{key}``", param), key
    assert all(np.isfinite(i["grad_norm"]) and i["grad_norm"] > 0 for i in got)
