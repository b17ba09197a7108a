"""embedviz.stats works without torch: its modules import neither torch, bokeh nor gensim."""

import subprocess
import sys


def test_stats_modules_import_no_torch_bokeh_or_gensim():
    code = (
        "import sys\n"
        "import embedviz.stats.listener, embedviz.stats.storage, embedviz.stats.remote\n"
        "import embedviz.stats.diagnostics, embedviz.stats.tsne_stats\n"
        "print(sorted(m for m in ('torch', 'bokeh', 'gensim') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_exports_its_public_names_lazily():
    # review 5 #14: `from embedviz.stats import Word2VecStats` was an ImportError
    code = (
        "import sys\n"
        "import embedviz.stats as s\n"
        "heavy = lambda: sorted(m for m in ('torch', 'bokeh', 'gensim') if m in sys.modules)\n"
        "print(heavy())\n"
        "from embedviz.stats import StatsListener, InMemoryStatsStorage, SQLiteStatsStorage\n"
        "from embedviz.stats import RemoteStatsRouter, TSNEStats\n"
        "print(heavy())\n"
        "from embedviz.stats import Word2VecStats\n"
        "import embedviz\n"
        "same = all(getattr(s, n) is getattr(embedviz, n) for n in s.__all__)\n"
        "print(sorted(s.__all__), same, set(s.__all__) <= set(dir(s)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    nothing, still_nothing, names = out.stdout.strip().splitlines()
    assert nothing == "[]"
    assert still_nothing == "[]"  # the listener imports torch only when it is used
    expected = sorted(
        [
            "InMemoryStatsStorage",
            "RemoteStatsRouter",
            "SQLiteStatsStorage",
            "StatsListener",
            "TSNEStats",
            "Word2VecStats",
        ]
    )
    assert names == f"{expected} True True"


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    import embedviz.stats

    with pytest.raises(AttributeError, match="embedviz.stats' has no attribute 'NoSuchThing'"):
        embedviz.stats.NoSuchThing  # noqa: B018
