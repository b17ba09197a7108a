"""Build ``data/glove-5k.bin``: the 5,000 most frequent GloVe 6B 50-d words.

Pure punctuation tokens (``,`` ``.`` ``"`` ...) are left out so the map shows words.
The file is word2vec binary (``COUNT DIM`` header, then ``word<space>`` and 50
little-endian float32 values per word), written with gensim's own writer, about 1 MB.

Run from the repository root::

    python scripts/make_sample_data.py            # writes data/glove-5k.bin
    python scripts/make_sample_data.py -n 2000 -o /tmp/glove-2k.bin
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _glove import load_glove  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="number of words (default 5000)")
    parser.add_argument("-o", "--output", default="data/glove-5k.bin", help="output file")
    args = parser.parse_args(argv)

    from gensim.models import KeyedVectors

    words, vectors = load_glove(args.n, skip_punctuation=True)
    kv = KeyedVectors(vectors.shape[1], count=0)
    kv.add_vectors(words, vectors)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    kv.save_word2vec_format(str(tmp), binary=True)
    tmp.replace(out)
    print(f"wrote {out}: {len(words)} words x {vectors.shape[1]} dims, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
