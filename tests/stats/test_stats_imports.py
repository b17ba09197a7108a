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
