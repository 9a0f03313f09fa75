"""The float32 screen of large galleries keeps the documented neighbour order.

References: exact rational arithmetic (test_neighbour_order.reference_order) on small
cases, and a brute-force numpy ordering (correctly rounded dot products, math.fsum) on
larger ones; every chunking of queries and candidates must give the same rows.
"""
import math

import numpy as np
import pytest

from robustpath.tasks import neighbour_screen, retrieval
from robustpath.tasks.neighbour_screen import ScreenedGallery, screen_margin
from robustpath.tasks.retrieval import SIMILARITY_GRID_BITS, nearest_neighbours
from test_neighbour_order import reference_order


def brute_force_order(query: np.ndarray, gallery: np.ndarray, k: int) -> list[int]:
    """(−floor(cos · 2^20), index) with every sum correctly rounded (math.fsum) in float64."""
    q = query.astype(np.float64)
    query_norm = math.sqrt(math.fsum(q * q))
    keys = []
    for index, item in enumerate(gallery.astype(np.float64)):
        cosine = math.fsum(q * item) / max(query_norm, 1e-12) / max(math.sqrt(math.fsum(item * item)), 1e-12)
        keys.append((-math.floor(cosine * 2**SIMILARITY_GRID_BITS), index))
    return [index for _, index in sorted(keys)[:k]]


def _tied_gallery(seed: int, size: int = 240, dim: int = 8):
    """A gallery with exact ties (copies, power-of-two scalings) and near-ties below the bin width."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    gallery = np.repeat(centres, size // 6, axis=0) * (1 + rng.normal(0, 2e-7, (size, dim)))
    gallery = gallery[rng.permutation(size)].astype(np.float32)
    gallery[10:14] = gallery[3]  # exact copies
    gallery[20] = gallery[3] * 4  # the same direction: a bit-identical cosine
    gallery[30:36] = gallery[40:46] * 0.5
    queries = (centres[rng.integers(0, 6, 24)] + rng.normal(0, 0.2, (24, dim))).astype(np.float32)
    queries[0] = gallery[3]  # a query equal to a tied gallery image
    return queries, gallery


@pytest.mark.parametrize("screen_elements, candidate_elements", [(1 << 24, 1 << 21), (240 * 5, 8 * 40), (240, 1)])
def test_screen_matches_exact_arithmetic_on_ties_for_every_chunking(monkeypatch, screen_elements, candidate_elements):
    monkeypatch.setattr(neighbour_screen, "_SCREEN_ELEMENTS", screen_elements)
    monkeypatch.setattr(retrieval, "_CANDIDATE_ELEMENTS", candidate_elements)
    queries, gallery = _tied_gallery(0)
    found = nearest_neighbours(queries, gallery, 10)
    for row, query in enumerate(queries):
        assert found[row].tolist() == reference_order(query, gallery, 10)


def test_screen_agrees_with_the_full_float64_order_and_a_brute_force_reference():
    rng = np.random.default_rng(5)
    gallery = rng.normal(size=(3000, 24)).astype(np.float32)
    gallery[1000:1040] = gallery[7]  # more exact ties than candidates: those queries fall back
    queries = (gallery[rng.integers(0, 3000, 200)] + rng.normal(0, 0.05, (200, 24))).astype(np.float32)
    queries[:3] = gallery[7]
    screen = ScreenedGallery(gallery, "cpu")
    assert screen.usable
    sufficient = screen.candidate_rows(queries.astype(np.float64), 10).sufficient
    assert not sufficient[:3].any() and sufficient[3:].mean() > 0.9  # the screen settles the others
    found = nearest_neighbours(queries, gallery, 10, screen=screen)
    full = retrieval._exact_neighbours(queries.astype(np.float64), gallery.astype(np.float64), 10)[0]
    np.testing.assert_array_equal(found, full)
    for row in range(0, 200, 20):
        assert found[row].tolist() == brute_force_order(queries[row], gallery, 10)
    assert found[0].tolist() == [7, *range(1000, 1009)]


@pytest.mark.parametrize("candidates", [11, 16, 64])
def test_candidate_count_does_not_change_the_order(candidates):
    queries, gallery = _tied_gallery(1, size=600, dim=16)
    screen = ScreenedGallery(gallery, "cpu", candidates=candidates)
    found = nearest_neighbours(queries, gallery, 10, screen=screen)
    for row, query in enumerate(queries):
        assert found[row].tolist() == brute_force_order(query, gallery, 10)


def test_non_finite_embeddings_take_the_full_computation():
    rng = np.random.default_rng(2)
    gallery = rng.normal(size=(100, 6)).astype(np.float32)
    queries = rng.normal(size=(5, 6)).astype(np.float32)
    queries[1, 2] = np.nan
    found = nearest_neighbours(queries, gallery, 5)
    full = retrieval._exact_neighbours(queries.astype(np.float64), gallery.astype(np.float64), 5)[0]
    np.testing.assert_array_equal(found, full)
    gallery[4, 0] = np.inf
    assert not ScreenedGallery(gallery).usable
    np.testing.assert_array_equal(
        nearest_neighbours(queries, gallery, 5),
        retrieval._exact_neighbours(queries.astype(np.float64), gallery.astype(np.float64), 5)[0],
    )


def test_margin_bounds_the_float32_error_and_refuses_useless_screens():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(500, 256)), rng.normal(size=(500, 256))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    error = np.abs((a.astype(np.float32) * b.astype(np.float32)).sum(axis=1, dtype=np.float32) - (a * b).sum(axis=1))
    assert error.max() < screen_margin(256, 2.0**-24) < 1e-4
    assert screen_margin(1024, 2.0**-8) is None  # bfloat16 products cannot exclude anything


def test_the_reach_holds_the_brute_force_top_k_and_trims_the_candidates():
    rng = np.random.default_rng(8)
    centre = rng.normal(size=64)
    gallery = (centre + rng.normal(0, 0.02, (800, 64))).astype(np.float32)  # cosines near 1, as in untrained encoders
    gallery[100:104] = gallery[50]  # exact ties
    queries = (centre + rng.normal(0, 0.02, (40, 64))).astype(np.float32)
    queries[0] = gallery[50]
    screen = ScreenedGallery(gallery, "cpu")
    found = screen.candidate_rows(queries.astype(np.float64), 10)
    assert found.sufficient.all() and (found.reach >= 10).all() and found.reach.mean() < screen.candidates
    for row, query in enumerate(queries):
        assert set(brute_force_order(query, gallery, 10)) <= set(found.rows[row, : found.reach[row]].tolist())
    np.testing.assert_array_equal(
        nearest_neighbours(queries, gallery, 10, screen=screen),
        [brute_force_order(query, gallery, 10) for query in queries],
    )


def test_float32_threshold_compares_like_the_float64_one():
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 50).astype(np.float32).astype(np.float64)])
    bounds = neighbour_screen.float32_at_least(values)
    assert bounds.dtype == np.float32
    for value, bound in zip(values, bounds):
        near = np.array([np.nextafter(bound, np.float32(-2)), bound, np.nextafter(bound, np.float32(2))], dtype=np.float32)
        assert ((near >= bound) == (near.astype(np.float64) >= value)).all()
    assert np.isnan(neighbour_screen.float32_at_least(np.array([np.nan]))).all()
