"""``plot_vocab``: word vectors in, an interactive t-SNE map out.

The Python counterpart of Deeplearning4j's ``lookupTable.plotVocab(tsne, n, file)``:
choose the words (:func:`embedviz.vectors.select_words`), embed them with
:class:`embedviz.TSNE` (cosine distances by default), colour them by k-means clusters
of the original vectors or by the user's labels, list each word's nearest neighbours
in the original space (taken from the t-SNE's own neighbour search, with their cosine
similarity) and draw everything with :func:`~embedviz.plot.scatter.scatter_2d` or
:func:`~embedviz.plot.scatter3d.scatter_3d`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedviz._check import check_choice, check_int
from embedviz._defaults import VOCAB_DEFAULTS
from embedviz.errors import InputError

logger = logging.getLogger(__name__)

N_NEIGHBORS = 10
UNLABELLED = "(no label)"


def plot_vocab(
    vectors: Any,
    tsne: Any = None,
    top: int | None = None,
    words: Sequence[str] | None = None,
    dims: int | None = None,
    colour: Any = None,
    output: str | Path | None = None,
    *,
    include: str | None = None,
    exclude: str | None = None,
    drop_stopwords: bool = False,
    drop_punctuation: bool = False,
    n_neighbors: int = N_NEIGHBORS,
    random_state: Any = VOCAB_DEFAULTS["seed"],
    title: str | None = None,
    n_labels: int = 50,
) -> tuple[Any, dict[str, Any]]:
    """Map a vocabulary with t-SNE and draw it as an interactive Bokeh plot.

    Parameters
    ----------
    vectors : str, Path, KeyedVectors, gensim model, (words, matrix), mapping or Selection
        A word-vector file (any format :func:`~embedviz.vectors.load_vectors` reads), gensim
        vectors or model, a pair of a word list and an (N, d) array (rank = list order),
        a mapping ``{word: vector}`` of equal-length vectors (rank = its order), or the
        result of :func:`~embedviz.vectors.select_words` or
        :func:`~embedviz.vectors.load_selection`.
    tsne : TSNE or estimator with fit_transform, default=None
        The t-SNE to run (it is fitted in place). None builds
        ``TSNE(n_components=dims, metric="cosine", random_state=random_state,
        reduce_perplexity=True)``: the perplexity is lowered for small vocabularies, with
        a warning. A t-SNE given here keeps its own perplexity (an InputError names the
        largest that fits when the words are too few), as ``embedviz tsne --perplexity``.
        With the cosine metric, words whose vector is all zeros (padding tokens) have
        no direction: they are left out with a warning naming them.
    top : int, default=None
        Map the ``top`` most frequent words (5000 when neither ``top`` nor ``words`` is
        given and ``vectors`` is not already a selection; with ``words``, the first
        ``top`` of them). A Selection is cut to its first ``top`` words.
    words : sequence of str, default=None
        Map these words; unknown ones are logged and skipped. With a Selection, only
        those of its words (``top``, ``words`` and the filters select again from it).
    dims : {2, 3}, default=None
        2-D or 3-D map; defaults to ``tsne.n_components`` or 2.
    colour : None, int, "none", mapping or sequence, default=None
        None: k-means with 12 clusters (of the unit-length vectors); an int: k-means with
        that many (at most one per word: more are cut, with a warning), 0 or "none": one
        colour (as ``embedviz tsne --clusters 0``); a mapping word -> label, or one label
        per word (the legend is then titled "label" and sorted naturally: L2 before L10).
    output : str or Path, default=None
        Write the page here (self-contained HTML; a name not ending in .html or .htm is
        written as given, with a warning).
    include, exclude, drop_stopwords, drop_punctuation
        Filters passed to :func:`~embedviz.vectors.select_words`.
    n_neighbors : int, default=10
        Neighbours listed per word (at most the t-SNE's own neighbour count; 0: none).
    random_state : int or None, default=42
        Seed for the default t-SNE and for k-means.
    title : str, default=None
        Page and plot title (default: the file name or "embedviz").
    n_labels : int, default=50
        Words labelled permanently (the most frequent).

    Returns
    -------
    layout : bokeh LayoutDOM
    table : dict
        Columns of equal length: ``"word"`` (list of str), ``"x"``, ``"y"`` (and ``"z"``
        in 3-D) float arrays, ``"rank"`` (1-based frequency rank, int array),
        ``"cluster"`` (int or str array) and ``"neighbors"`` (list of lists of
        (word, cosine similarity)). ``pandas.DataFrame(table)`` makes a data frame.

    Examples
    --------
    >>> layout, table = plot_vocab("data/glove-5k.bin", top=1000, output="glove.html")
    ... # doctest: +SKIP
    >>> table["word"][:3], table["x"][:3]  # doctest: +SKIP
    """
    if output is not None and not Path(output).parent.is_dir():
        raise InputError(
            f"output: expected a file in an existing directory, got {str(output)!r:.80} (no "
            f"directory {str(Path(output).parent)!r:.80}); create it or choose another path"
        )
    if output is not None and Path(output).suffix.lower() not in (".html", ".htm"):
        logger.warning(
            "output %r does not end in .html or .htm: the page written there is HTML (open "
            "it in a browser)",
            str(output),
        )
    check_int("n_neighbors", n_neighbors, low=0)  # 0: no neighbour lists
    from embedviz.plot._vocab_sources import selection_of

    tsne, dims = _tsne(tsne, dims, random_state)
    selection, source_name = selection_of(
        vectors, top, words, include, exclude, drop_stopwords, drop_punctuation
    )
    if getattr(tsne, "metric", None) == "cosine":
        before = selection.words
        selection = drop_zero_vectors(selection, advice="metric='euclidean' keeps such words")
        if len(selection.words) < len(before) and _per_word(colour, len(before)):
            kept = set(selection.words)  # one label per word: those of the words kept
            colour = [c for w, c in zip(before, colour, strict=True) if w in kept]
    words_, matrix, rank = selection.words, selection.vectors, selection.rank
    from embedviz.tsne.affinity import MIN_SAMPLES

    least = 2 if getattr(tsne, "method", None) == "exact" else MIN_SAMPLES
    if len(words_) < least:
        raise InputError(
            f"plot_vocab needs at least {least} words to map (t-SNE's minimum); the selection "
            f"holds {len(words_)} (check top, words and the filters)"
        )
    _check_distinct_vectors(tsne, matrix)
    clusters = _colours(colour, words_, matrix, random_state)
    logger.info("embedding %d words of %d dimensions in %dD", len(words_), matrix.shape[1], dims)
    coords = np.asarray(tsne.fit_transform(matrix), dtype=np.float64)
    neighbors = neighbor_lists(tsne, matrix, words_, n_neighbors)

    title = title or source_name
    computed = colour is None or isinstance(colour, (int, np.integer))  # k-means
    legend_title = "cluster" if computed else "label"
    layout = _draw(coords, words_, rank, clusters, neighbors, dims, title, n_labels, legend_title)
    table: dict[str, Any] = {"word": list(words_)}
    for axis, name in enumerate("xyz"[:dims]):
        table[name] = coords[:, axis]
    table["rank"] = np.asarray(rank, dtype=np.int64)
    table["cluster"] = clusters if clusters is not None else np.zeros(len(words_), np.int64)
    table["neighbors"] = neighbors
    if output is not None:
        from embedviz.plot.export import save_html

        save_html(layout, output, title=title)  # which logs where it wrote the page
    return layout, table


def _check_distinct_vectors(tsne, matrix) -> None:
    """The words' vectors are not all one point (before k-means, which would warn)."""
    metric = getattr(tsne, "metric", None)
    if metric in ("euclidean", "cosine") and len(matrix) >= 2:
        from embedviz.tsne.affinity import check_distinct_rows

        advice = "check the file, or select other words"
        rows = np.asarray(matrix, dtype=np.float64)  # as the t-SNE will see them
        check_distinct_rows(rows, metric, name="word vectors", advice=advice)


def drop_zero_vectors(selection, advice: str = ""):
    """The selection without its all-zero vectors (padding tokens such as ``<pad>``).

    A zero vector has no direction, so its cosine distance to any word is undefined;
    the words left out are named in one warning (the first five, then a count).

    Parameters
    ----------
    selection : Selection
        From :func:`~embedviz.vectors.select_words` or
        :func:`~embedviz.vectors.load_selection`.
    advice : str, default=""
        Appended to the warning in parentheses (e.g. how to keep the words).

    Returns
    -------
    Selection
        ``selection`` itself when no vector is zero.

    Examples
    --------
    >>> sel = drop_zero_vectors(load_selection("vectors.txt"))  # doctest: +SKIP
    """
    from embedviz.vectors import Selection

    zero = ~np.asarray(selection.vectors).any(axis=1)
    if not zero.any():
        return selection
    names = [selection.words[i] for i in np.flatnonzero(zero)]
    shown = ", ".join(repr(w) for w in names[:5])
    if len(names) > 5:
        shown += f" and {len(names) - 5} more"
    logger.warning(
        "left out %d word%s with an all-zero vector (no direction, so no cosine distance): %s%s",
        len(names),
        "" if len(names) == 1 else "s",
        shown,
        f" ({advice})" if advice else "",
    )
    keep = np.flatnonzero(~zero)
    return Selection(
        [selection.words[i] for i in keep],
        selection.vectors[keep],
        np.asarray(selection.rank)[keep],
        selection.unknown,
    )


def _per_word(colour, n: int) -> bool:
    """Whether ``colour`` is one label per word for ``n`` words (not a mapping or a count)."""
    return (
        isinstance(colour, (Sequence, np.ndarray))
        and not isinstance(colour, str)
        and len(colour) == n
    )


def _tsne(tsne, dims, random_state):
    if dims is not None:
        check_choice("dims", dims, (2, 3))
    if tsne is None:
        from embedviz.tsne.estimator import TSNE

        dims = dims or VOCAB_DEFAULTS["dims"]
        tsne = TSNE(
            n_components=dims,
            metric=VOCAB_DEFAULTS["metric"],
            random_state=random_state,
            reduce_perplexity=True,
        )
        return tsne, dims
    if not hasattr(tsne, "fit_transform"):
        kind = type(tsne)
        raise InputError(
            "tsne: expected embedviz.TSNE or another estimator with fit_transform (such as "
            f"sklearn.manifold.TSNE), got {kind.__module__}.{kind.__qualname__}, which has "
            "none; pass embedviz.TSNE(...) or leave tsne out"
        )
    own = getattr(tsne, "n_components", dims or 2)
    if dims is not None and own != dims:
        raise InputError(
            f"dims: expected the n_components of the t-SNE given ({own}), got {dims}; make "
            "them agree"
        )
    if own not in (2, 3):
        raise InputError(
            f"tsne: expected n_components 2 or 3 to draw the map, got n_components={own}"
        )
    return tsne, own


def _colours(colour, words, matrix, random_state):
    """Cluster labels per word: k-means, the user's labels, or None for one colour."""
    n = len(words)
    if isinstance(colour, str) and colour == "none":
        return None
    if colour is None or (isinstance(colour, (int, np.integer)) and not isinstance(colour, bool)):
        k = VOCAB_DEFAULTS["clusters"] if colour is None else int(colour)
        if k == 0:  # as embedviz tsne --clusters 0
            return None
        if k < 0:
            raise InputError(f"colour: expected a number of clusters >= 0 (0: one colour), got {k}")
        if k > n and colour is not None:  # the default is cut silently, as the CLI's
            logger.warning(
                "colour=%d asks for more clusters than there are words (%d): using %d, one "
                "word each (ask for fewer to see groups)",
                k, n, n,
            )  # fmt: skip
        k = min(k, n)
        return kmeans_labels(matrix, k, random_state)
    if isinstance(colour, Mapping):
        labels = [str(colour.get(w, UNLABELLED)) for w in words]
        missing = sum(w not in colour for w in words)
        if missing:
            logger.info("%d of %d words have no label: shown as %r", missing, n, UNLABELLED)
        return np.asarray(labels, dtype=object)
    if isinstance(colour, (Sequence, np.ndarray)) and not isinstance(colour, str):
        if len(colour) != n:
            raise InputError(
                f"colour: expected one label per word ({n} words), got {len(colour)} labels"
            )
        return np.asarray(colour)
    raise InputError(
        "colour: expected None, a number of clusters, 'none', a mapping word -> label or one "
        f"label per word, got {colour!r:.60}"
    )


def kmeans_labels(matrix: np.ndarray, k: int, random_state: Any = None) -> np.ndarray:
    """k-means cluster of each row of ``matrix`` after scaling rows to unit length.

    Unit rows make squared Euclidean distance ``2 - 2 cos``, so the clusters follow the
    cosine similarity that word vectors are compared by.

    Examples
    --------
    >>> kmeans_labels(np.eye(4)[[0, 0, 1, 1]] + 0.01, 2, random_state=0)  # doctest: +SKIP
    array([1, 1, 0, 0], dtype=int32)
    """
    from sklearn.cluster import KMeans

    unit = _unit_rows(matrix)
    if k == 1:
        return np.zeros(len(unit), dtype=np.int64)
    return KMeans(n_clusters=k, n_init=1, random_state=random_state).fit_predict(unit)


def _unit_rows(matrix):
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def neighbor_lists(tsne: Any, matrix: np.ndarray, words: Sequence[str], n_neighbors: int):
    """Each word's nearest neighbours as ``(word, cosine similarity)``, most similar first.

    The candidates are the t-SNE's own neighbours (``tsne.neighbors_``, found while
    computing its affinities, so no second search); the similarity is recomputed in
    the original space, which ``normalize`` or ``pca_components`` may have changed.
    Estimators without ``neighbors_`` (scikit-learn's) get an exact cosine search.
    """
    unit = _unit_rows(matrix).astype(np.float32)  # 4 decimals are shown
    n = len(words)
    found = getattr(tsne, "neighbors_", None)
    if found is not None:
        indices = np.asarray(found[0])
    else:
        from sklearn.neighbors import NearestNeighbors

        k = min(n - 1, 3 * n_neighbors)
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(unit)
        indices = nn.kneighbors(unit, return_distance=False)
    sims = np.empty(indices.shape, dtype=np.float32)
    step = max(1, 4_000_000 // max(1, indices.shape[1] * unit.shape[1]))  # bounded memory
    for start in range(0, n, step):
        block = slice(start, start + step)
        sims[block] = np.einsum("ij,ikj->ik", unit[block], unit[indices[block]])
    sims[indices == np.arange(n)[:, None]] = -np.inf  # never a word's own neighbour
    order = np.arange(sims.shape[1])[None, :].repeat(n, axis=0)
    if n_neighbors < sims.shape[1]:  # the best few first, then only those sorted
        order = np.argpartition(-sims, n_neighbors - 1, axis=1)[:, :n_neighbors]
    ranked = np.argsort(-np.take_along_axis(sims, order, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(order, ranked, axis=1)
    best = np.take_along_axis(indices, order, axis=1)
    best_sims = np.take_along_axis(sims, order, axis=1)
    names = np.asarray(words, dtype=object)[best].tolist()
    lists = [
        list(zip(row_names, row_sims, strict=True))
        for row_names, row_sims in zip(
            names, np.round(best_sims.astype(np.float64), 4).tolist(), strict=True
        )
    ]
    for i in np.flatnonzero(~np.isfinite(best_sims).all(axis=1)):  # fewer candidates than asked
        lists[i] = [(w, s) for w, s in lists[i] if np.isfinite(s)]
    return lists


def _draw(coords, words, rank, clusters, neighbors, dims, title, n_labels, legend_title):
    kwargs = dict(
        rank=rank,
        clusters=clusters,
        neighbors=neighbors,
        title=title,
        n_labels=n_labels,
        legend_title=legend_title,
    )
    if dims == 3:
        from embedviz.plot.scatter3d import scatter_3d

        return scatter_3d(coords, words, **kwargs)
    from embedviz.plot.scatter import scatter_2d

    return scatter_2d(coords, words, **kwargs)
