"""Physical slide artefacts: folds, air bubbles, dust, uneven illumination and tile seams.

Each module registers one random, nested operation (see :mod:`corruptions.registry`):
the geometry of sample i comes only from its generator, with a fixed number of
uniform numbers whatever the parameter, so severities drawn with the same generator
share their artefacts and a higher one adds to them. Lengths are in pixels of the
image the artefact is drawn on (:mod:`corruptions.artefacts.geometry`).
"""
from corruptions.artefacts import bubble, dust, fold, illumination, seam  # noqa: F401  (registration)
