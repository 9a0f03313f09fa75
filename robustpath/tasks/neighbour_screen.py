"""Nearest neighbours at scale: a float32 screen on the device, the exact order on its candidates.

The neighbour order of robustpath.tasks.retrieval (float64 cosine, bins of width
2^-20, ties by gallery index, fixed-order evaluation near bin edges) costs a
float64 product of every query with every gallery image.  Here a float32
product (torch on the model's device; numpy's BLAS on the CPU) picks, per query,
the gallery images whose float32 cosine reaches a threshold; the documented
float64 rule then orders those candidates only.  The result is the same as the
full float64 computation because the candidates provably contain every image
that can enter the top k:

- with unit rows rounded to float32 (relative error ≤ u per element) and a
  float32 sum of D products, the float32 cosine differs from the exact one by
  at most m = (D + 2) · u / (1 − (D + 2) · u) (Cauchy–Schwarz: Σ|q_i g_i| ≤ 1),
  for any order of summation; u = 2^-24 in float32, 2^-11 when torch lets
  float32 products use TF32, 2^-8 for bfloat16 ("medium" precision);
- if t is the k-th largest float32 cosine of a query, k images have exact
  cosine ≥ t − m, so the k-th exact bin is ≥ bin(t − m), and an image in the
  top k has exact cosine ≥ t − m − h (h = 2^-20), hence float32 cosine
  ≥ t − 2m − h: the threshold (compared in float64, less another 2^-30);
- a query with SCREEN_CANDIDATES or more gallery images at or above its
  threshold (many near-ties), or whose embedding is not finite, is ordered by
  the full float64 computation instead; so is every query when the gallery
  has a non-finite value or the screen could not exclude anything.

The images at or above the threshold (the query's *reach*, at least k) are the
candidates, and the gallery's float64 norms are computed once.  Within them each
similarity gets the same bin as in the full computation (its fast value is
trusted only at least 2^-33 from a bin edge, else the fixed-order value
decides), so the order is the documented one, for any device, BLAS library,
thread count or query block.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

SCREEN_CANDIDATES = 32  # a query with this many candidates or more takes the full computation
_SCREEN_ELEMENTS = 1 << 24  # float32 similarities held at once on the device (query rows × gallery)
_QUERY_ELEMENTS = 1 << 20  # float64 query coordinates held at once (query rows × D)
_TINY_NORM = 1e-12
_NORM_ROWS = 4096  # gallery rows converted to float64 at once while the screen is prepared


def unit_roundoff(device) -> float:
    """The unit roundoff of torch float32 matrix products on ``device`` (TF32 / bf16 when allowed)."""
    import torch

    precision = torch.get_float32_matmul_precision()
    if precision == "medium":
        return 2.0 ** -8
    tf32 = torch.backends.cuda.matmul.allow_tf32 if getattr(device, "type", str(device)) == "cuda" else False
    if precision == "high" or tf32:
        return 2.0 ** -11
    return 2.0 ** -24


def screen_margin(dim: int, roundoff: float) -> float | None:
    """Bound on |float32 cosine − exact cosine| for ``dim``-dimensional unit rows; None when useless (≥ 1)."""
    terms = (dim + 2) * roundoff
    if terms >= 0.5:
        return None
    return 1.01 * terms / (1.0 - terms) + 2.0 ** -40


class Candidates(NamedTuple):
    """What the screen found for a block of B queries.

    rows: (B, W) int64: row b starts with the reach[b] gallery rows that can enter its
    top k, in gallery order (the rest is padding), for the settled queries; reach: (B,)
    int64, how many gallery images reach the query's threshold; sufficient: (B,) bool,
    the screen settles the query (reach < SCREEN_CANDIDATES, finite embedding), else the
    full computation orders it.
    """

    rows: np.ndarray
    reach: np.ndarray
    sufficient: np.ndarray


class ScreenedGallery:
    """A gallery prepared once for many query blocks: float32 unit rows on the device.

    gallery: (G, D) float32 or float64 embeddings (kept by reference, not copied);
    device: a torch device (or name).  ``usable`` is False when the gallery has a
    non-finite value or the screen cannot exclude anything (then use the full computation).
    ``norms``: (G,) float64 max(|row|, 1e-12) of the float64 rows, for the exact order.
    """

    def __init__(self, gallery: np.ndarray, device="cpu", candidates: int = SCREEN_CANDIDATES) -> None:
        import torch

        self.gallery = gallery
        self.device = torch.device(device)
        self.candidates = int(candidates)
        self.margin = screen_margin(gallery.shape[1] if gallery.ndim == 2 else 0, unit_roundoff(self.device))
        self.usable = bool(
            self.margin is not None and len(gallery) > self.candidates and np.isfinite(gallery).all()
        )
        self.unit = self.norms = None
        if self.usable:
            self.norms = np.zeros(len(gallery))
            unit = np.zeros(gallery.shape, dtype=np.float32)
            for start in range(0, len(gallery), _NORM_ROWS):
                rows = slice(start, start + _NORM_ROWS)
                unit[rows], self.norms[rows] = _unit_rows_float32(gallery[rows], with_norms=True)
            self.unit = torch.from_numpy(unit).to(self.device)

    def candidate_rows(self, queries: np.ndarray, k: int, *, unit: bool = False) -> Candidates:
        """(B, D) float64 queries (``unit``: already divided by max(|row|, 1e-12)) → their Candidates."""
        import torch

        unit_queries = queries.astype(np.float32) if unit else _unit_rows_float32(queries)
        with torch.inference_mode():
            if self.device.type == "cpu":  # numpy's BLAS: the same bound, faster than torch's here
                similarity = torch.from_numpy(unit_queries @ self.unit.numpy().T)
            else:
                similarity = torch.from_numpy(unit_queries).to(self.device) @ self.unit.T
            kth = torch.topk(similarity, k, dim=1).values[:, k - 1].double().cpu().numpy()
            threshold = kth - 2.0 * self.margin - 2.0 ** -20 - 2.0 ** -30
            within = similarity >= torch.from_numpy(float32_at_least(threshold)).to(self.device)[:, None]
            reach = within.to(torch.uint8).sum(dim=1, dtype=torch.int32).cpu().numpy().astype(np.int64)  # fast, unlike a bool sum
            sufficient = (reach < self.candidates) & np.isfinite(queries).all(axis=1)
            within &= torch.from_numpy(sufficient).to(self.device)[:, None]
            pairs = within.nonzero().cpu().numpy()
        return Candidates(_rows_by_query(pairs, len(queries), int(reach[sufficient].max(initial=k))), reach, sufficient)


def float32_at_least(values: np.ndarray) -> np.ndarray:
    """(B,) float64 → (B,) float32, each the smallest float32 ≥ the value: for float32 x,
    x ≥ result ⇔ x ≥ value (NaN stays NaN)."""
    rounded = values.astype(np.float32)
    return np.where(rounded.astype(np.float64) < values, np.nextafter(rounded, np.float32(np.inf)), rounded)


def _rows_by_query(pairs: np.ndarray, queries: int, width: int) -> np.ndarray:
    """(P, 2) (query, gallery row) pairs sorted by query, then row → (queries, width) int64 table,
    each query's rows first, zero padding after."""
    table = np.zeros((queries, width), dtype=np.int64)
    query_rows, gallery_rows = pairs[:, 0], pairs[:, 1]
    slots = np.arange(len(pairs)) - np.searchsorted(query_rows, query_rows, side="left")
    table[query_rows, slots] = gallery_rows
    return table


def _unit_rows_float32(vectors: np.ndarray, with_norms: bool = False):
    """(N, D) → float32 rows of the float64-normalised vectors (zero rows stay zero);
    ``with_norms``: also the (N,) float64 norms max(|row|, 1e-12) they were divided by."""
    wide = np.asarray(vectors, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(wide, axis=1, keepdims=True), _TINY_NORM)
    unit = (wide / norms).astype(np.float32)
    return (unit, norms[:, 0]) if with_norms else unit


def query_blocks(n_queries: int, gallery_size: int, dim: int = 1) -> range:
    """Start rows of the query blocks of the float32 screen: at most 16 M similarities and
    1 M float64 query coordinates at once (small buffers, which the allocator reuses instead
    of keeping fragments of larger ones)."""
    rows = min(_SCREEN_ELEMENTS // max(gallery_size, 1), _QUERY_ELEMENTS // max(dim, 1))
    return range(0, n_queries, max(1, rows))
