"""Bootstrap in blocks of resamples: the same intervals as one (B, n) index matrix, computed by hand.

Reference: the documented scheme recomputed with plain numpy — one matrix of B rows drawn by
numpy.random.default_rng([seed, n]).integers(0, n, (B, n)), metric per row, 2.5/97.5
percentiles (NaN ignored: numpy.nanpercentile), paired differences with the clean set under the same rows.
"""
import numpy as np
import pytest

from robustpath.tasks import metrics
from robustpath.tasks.outcomes import Outcomes, PairedScorer

TAILS = [(1 - 0.95) / 2 * 100, 100 - (1 - 0.95) / 2 * 100]  # the percentiles as the scheme computes them


def _outcomes(rng, n, flip):
    labels = rng.integers(0, 3, n)
    predictions = np.where(rng.random(n) < flip, rng.integers(0, 3, n), labels)
    hits = (predictions == labels).astype(float)
    return Outcomes(n_classes=3, labels=labels, predictions=predictions,
                    per_sample={"ap": rng.random(n) * hits, "top1_accuracy": hits})


def _by_hand(outcome, clean, seed, resamples):
    n = outcome.n
    rows = np.random.default_rng([seed, n]).integers(0, n, size=(resamples, n))
    found = {}
    for name in ("ap", "top1_accuracy", "accuracy"):
        def per_row(o):
            if name == "accuracy":
                return (o.labels[rows] == o.predictions[rows]).sum(axis=1) / n
            return o.per_sample[name][rows].mean(axis=1)

        variant, reference = per_row(outcome), per_row(clean)
        found[name] = (*np.nanpercentile(variant, TAILS), *np.nanpercentile(variant - reference, TAILS))
    return found


@pytest.mark.parametrize("block_elements", [1 << 22, 999 * 7, 999])
def test_blocked_intervals_equal_one_matrix_by_hand(monkeypatch, block_elements):
    monkeypatch.setattr(metrics, "_CACHED_BYTES", 0)  # never one matrix: resamples drawn block by block
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(0)
    clean, corrupted = _outcomes(rng, 999, 0.1), None
    corrupted = Outcomes(n_classes=3, labels=clean.labels,
                         predictions=np.where(rng.random(999) < 0.3, 0, clean.predictions),
                         per_sample={name: values * (rng.random(999) < 0.8) for name, values in clean.per_sample.items()})
    names = ("ap", "top1_accuracy", "accuracy")
    values = PairedScorer(names, seed=11, clean=clean, resamples=300).score(corrupted)
    expected = _by_hand(corrupted, clean, 11, 300)
    for name in names:
        value = values[name]
        assert (value.ci_low, value.ci_high, value.drop_ci_low, value.drop_ci_high) == expected[name], name


@pytest.mark.parametrize("n, resamples", [(5000, 40), (70000, 3)])
def test_kept_index_matrix_has_the_rows_of_one_seeded_draw(n, resamples):
    """The matrix kept between tasks and variants (uint16 up to n = 65,536, else uint32) holds
    the rows numpy.random.default_rng([seed, n]).integers(0, n, (B, n)) draws, in int64 blocks."""
    expected = np.random.default_rng([3, n]).integers(0, n, size=(resamples, n))
    for _ in range(2):  # drawn, then read from the kept matrix
        blocks = list(metrics.bootstrap_index_blocks(n, 3, resamples))
        assert all(block.dtype == np.int64 for block in blocks)
        np.testing.assert_array_equal(np.concatenate(blocks), expected)
    assert metrics._shared_indices.cache_info().currsize == 1


def test_resampled_means_of_flags_and_fractions_equal_float_means_by_hand():
    from robustpath.tasks.outcomes import resampled_means

    rng = np.random.default_rng(4)
    rows = rng.integers(0, 500, size=(30, 500))
    hits = (rng.random(500) < 0.7).astype(float)
    for values in (hits, hits.astype(bool), hits.astype(np.int64), rng.random(500), np.where(hits, np.nan, 1.0)):
        by_hand = np.array([np.sum(values[row].astype(float)) for row in rows]) / 500
        found = resampled_means(values, rows)
        np.testing.assert_allclose(found, by_hand, rtol=1e-15, atol=0)
        assert np.array_equal(found, values.astype(float)[rows].mean(axis=1), equal_nan=True)  # the same bits
