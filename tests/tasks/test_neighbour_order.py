"""Retrieval neighbour order: a machine-independent function of the embeddings.

References: exact rational arithmetic (fractions.Fraction) for the similarity bins, and
plain Python sorting by (−bin, gallery index) for the documented tie rule.
"""
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np

from robustpath.tasks import retrieval
from robustpath.tasks.retrieval import ROUNDING_GUARD, SIMILARITY_GRID_BITS, nearest_neighbours

GRID = Fraction(1, 2**SIMILARITY_GRID_BITS)
REPOSITORY = Path(__file__).resolve().parents[2]


def exact_bin(query: np.ndarray, item: np.ndarray) -> int:
    """floor(cos / 2^-20) in exact rational arithmetic (the embeddings are exact binary fractions)."""
    q = [Fraction(float(v)) for v in query]
    g = [Fraction(float(v)) for v in item]
    dot = sum(a * b for a, b in zip(q, g))
    norms_squared = sum(a * a for a in q) * sum(b * b for b in g)

    def at_least(m: int) -> bool:  # cos ≥ m · GRID, compared through squares
        edge = m * GRID
        if edge >= 0:
            return dot >= 0 and dot * dot >= edge * edge * norms_squared
        return dot >= 0 or dot * dot <= edge * edge * norms_squared

    cosine = float(dot) / float(norms_squared) ** 0.5
    m = int(np.floor(cosine * 2**SIMILARITY_GRID_BITS)) + 2
    while not at_least(m):
        m -= 1
    return m


def reference_order(query: np.ndarray, gallery: np.ndarray, k: int) -> list[int]:
    bins = [exact_bin(query, item) for item in gallery]
    return sorted(range(len(gallery)), key=lambda j: (-bins[j], j))[:k]


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def test_exact_ties_go_to_the_lower_gallery_index():
    query = np.array([[1.0, 0.25]], dtype=np.float32)
    base = np.array([0.6, 0.8], dtype=np.float32)
    gallery = np.stack([_unit(2.0), base * 4, _unit(1.5), base, base * 0.5, _unit(0.0)]).astype(np.float32)
    # rows 1, 3 and 4 point the same way (scaled by powers of two: bit-identical cosines)
    order = nearest_neighbours(query, gallery, 6)[0].tolist()
    assert order == reference_order(query[0], gallery, 6)
    tied = [j for j in order if j in (1, 3, 4)]
    assert tied == [1, 3, 4]


def _near(cosine: float) -> np.ndarray:
    """A float32 gallery vector whose cosine with (1, 0) is ``cosine`` to about 1e-15."""
    return np.array([1.0, np.sqrt(1.0 / cosine**2 - 1.0)], dtype=np.float32)


def test_near_ties_below_the_grid_are_ties_and_gaps_above_it_are_not():
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    middle = (0.9 * 2**SIMILARITY_GRID_BITS // 1 + 0.5) / 2**SIMILARITY_GRID_BITS  # the middle of a bin near 0.9
    gallery = np.stack([
        _near(middle - 2e-7),   # 0: same bin, less similar than 1 → still first (lower index)
        _near(middle + 2e-7),   # 1
        _near(middle - 3e-6),   # 2: more than one bin width below → after 0 and 1
        _near(middle + 3e-6),   # 3: more than one bin width above → first despite its index
    ])
    cosines = gallery[:, 0].astype(np.float64) / np.linalg.norm(gallery.astype(np.float64), axis=1)
    assert 3e-7 < cosines[1] - cosines[0] < 2.0**-SIMILARITY_GRID_BITS  # a real gap, below the bin width
    order = nearest_neighbours(query, gallery, 4)[0].tolist()
    assert order == [3, 0, 1, 2] == reference_order(query[0], gallery, 4)


def _edge_case_gallery(seed: int = 0, wanted: int = 40):
    """Float32 vectors whose cosine with the query (1, 0, …) lies within ROUNDING_GUARD / 2 of one
    bin edge, on both sides of it, shuffled among ordinary vectors."""
    rng = np.random.default_rng(seed)
    edge = round(0.9 * 2**SIMILARITY_GRID_BITS) / 2**SIMILARITY_GRID_BITS
    directions = rng.normal(size=(400_000, 7))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tangent = np.sqrt(1.0 / edge**2 - 1.0)
    candidates = np.concatenate([np.ones((len(directions), 1)), tangent * directions], axis=1).astype(np.float32)
    wide = candidates.astype(np.float64)
    distance = np.abs(wide[:, 0] / np.linalg.norm(wide, axis=1) - edge)
    chosen = np.flatnonzero((distance < ROUNDING_GUARD / 2) & (distance > 1e-14))[:wanted]
    ordinary = rng.normal(size=(60, 8)).astype(np.float32)
    gallery = np.concatenate([candidates[chosen], ordinary])
    query = np.zeros((1, 8), dtype=np.float32)
    query[0, 0] = 1.0
    return query, gallery[rng.permutation(len(gallery))]


def test_similarities_at_bin_edges_match_exact_arithmetic_even_when_the_fast_path_rounds_otherwise(monkeypatch):
    query, gallery = _edge_case_gallery()
    expected = reference_order(query[0], gallery, len(gallery))
    assert nearest_neighbours(query, gallery, len(gallery))[0].tolist() == expected
    fast = retrieval._fast_similarity

    def another_blas(queries, unit_gallery):  # rounding noise far above float64's, below the guard
        noise = np.random.default_rng(1).uniform(-0.5, 0.5, (len(queries), len(unit_gallery))) * ROUNDING_GUARD
        return fast(queries, unit_gallery) + noise

    monkeypatch.setattr(retrieval, "_fast_similarity", another_blas)
    assert nearest_neighbours(query, gallery, len(gallery))[0].tolist() == expected
    monkeypatch.setattr(retrieval, "ROUNDING_GUARD", 0.0)  # without the fixed-order check the noise shows
    assert nearest_neighbours(query, gallery, len(gallery))[0].tolist() != expected


_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    from robustpath.tasks import retrieval
    rng = np.random.default_rng(7)
    gallery = rng.normal(size=(900, 48)).astype(np.float32)
    queries = (gallery[rng.integers(0, 900, 250)] + rng.normal(0, 1e-3, (250, 48))).astype(np.float32)
    gallery[100:110] = gallery[5]  # exact duplicates
    results = {}
    for block in (1 << 22, 900 * 7, 900):  # all queries at once, 7 at a time, one at a time
        retrieval._BLOCK_ELEMENTS = block
        results[block] = hashlib.sha256(retrieval.nearest_neighbours(queries, gallery, 10).tobytes()).hexdigest()
    one_by_one = np.concatenate([retrieval.nearest_neighbours(q[None], gallery, 10) for q in queries[::25]])
    results["rows"] = hashlib.sha256(one_by_one.tobytes()).hexdigest()
    print(json.dumps(results))
""")


def _run_with_threads(threads: int) -> dict:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {**os.environ, **dict.fromkeys(names, str(threads)), "PYTHONPATH": str(REPOSITORY)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_order_is_the_same_for_every_batch_of_queries_and_thread_count():
    one, two = _run_with_threads(1), _run_with_threads(2)
    assert one == two
    assert len({one[key] for key in one if key != "rows"}) == 1  # block size does not matter


def test_order_follows_the_rule_on_random_embeddings_with_many_near_ties():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(10, 16))
    # 30 near-copies of each centre: their cosines with a query differ by about 1e-7, below the bin width
    gallery = (np.repeat(centres, 30, axis=0) * (1 + rng.normal(0, 3e-7, (300, 16)))).astype(np.float32)
    gallery = gallery[rng.permutation(300)]
    queries = (centres[rng.integers(0, 10, 20)] + rng.normal(0, 0.3, (20, 16))).astype(np.float32)
    gallery[200:205] = gallery[3]
    found = nearest_neighbours(queries, gallery, 10)
    for row, query in enumerate(queries):
        assert found[row].tolist() == reference_order(query, gallery, 10)
    assert nearest_neighbours(queries, gallery[:4], 10).shape == (20, 4)  # k above the gallery size
    assert nearest_neighbours(queries[:0], gallery, 10).shape == (0, 10)
