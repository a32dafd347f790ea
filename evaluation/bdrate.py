"""Bjontegaard-delta rate (BD-rate) of a codec against an anchor, with the `bjontegaard` package.

Method: log10(rate) interpolated as a function of quality with piecewise cubic Hermite interpolation ('pchip',
the piecewise cubic of the JVET common test conditions), averaged over the overlapping quality interval, and
converted to a percentage: BD-rate = (10^(mean log-rate difference) - 1) * 100 %. Negative = fewer bits than the
anchor at equal quality.

Lower-is-better metrics are turned into higher-is-better ones with the paper's normalisations (QUALITY_TRANSFORM):
1 - DISTS, 1 - LPIPS, 5000 - FVD.

No extrapolation: when a curve is not strictly monotonic (quality increasing with rate), has fewer than 2 points,
or the two quality ranges overlap less than ``min_overlap`` of their union, the result is None with the reason.
"""
from dataclasses import dataclass

import bjontegaard
import numpy as np

INTERPOLATION = 'pchip'
DEFAULT_MIN_OVERLAP = 0.75          # the bjontegaard package's own threshold for a warning

# metric -> (label, higher-is-better transform of the raw value)
QUALITY_TRANSFORM = {
    'dists': ('1-DISTS', lambda v: 1.0 - v),
    'lpips_vgg': ('1-LPIPS(VGG)', lambda v: 1.0 - v),
    'lpips_alex': ('1-LPIPS(Alex)', lambda v: 1.0 - v),
    'fvd': ('5000-FVD', lambda v: 5000.0 - v),
}


def quality_label(metric):
    """Axis / table label of a metric on its higher-is-better scale (e.g. 'dists' -> '1-DISTS')."""
    return QUALITY_TRANSFORM[metric][0] if metric in QUALITY_TRANSFORM else metric.upper().replace('_', '-')


def to_quality(metric, values):
    """Raw metric values -> higher-is-better quality values (identity for PSNR, SSIM, MS-SSIM, VMAF).

    Args:
        metric: metric name.
        values: array-like of raw values.
    Returns:
        numpy float64 array.
    """
    values = np.asarray(values, dtype=np.float64)
    return QUALITY_TRANSFORM[metric][1](values) if metric in QUALITY_TRANSFORM else values


@dataclass(frozen=True)
class BDResult:
    """BD-rate outcome.

    Attributes:
        bd_rate: percent (negative = bit saving vs the anchor) or None when not computed.
        reason: why it was not computed ('' when it was).
        overlap: fraction of the union of the quality ranges covered by both curves, in [0, 1].
    """
    bd_rate: object
    reason: str = ''
    overlap: float = 0.0


def _curve(rates, qualities, name):
    rates = np.asarray(rates, dtype=np.float64)
    qualities = np.asarray(qualities, dtype=np.float64)
    if rates.shape != qualities.shape or rates.ndim != 1:
        raise ValueError(f"{name}: rates {rates.shape} and qualities {qualities.shape} must be equal-length 1-D")
    if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(qualities))):
        return None, None, f"{name} curve has non-finite values"
    if np.any(rates <= 0):
        return None, None, f"{name} curve has non-positive rates"
    if len(rates) < 2:
        return None, None, f"{name} curve has {len(rates)} point(s); at least 2 are needed"
    order = np.argsort(rates)
    rates, qualities = rates[order], qualities[order]
    if np.any(np.diff(rates) <= 0) or np.any(np.diff(qualities) <= 0):
        return None, None, (f"{name} curve is not strictly monotonic (quality must rise with rate): "
                            f"rates {np.round(rates, 3).tolist()}, quality {np.round(qualities, 4).tolist()}")
    return rates, qualities, ''


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, min_overlap=DEFAULT_MIN_OVERLAP):
    """BD-rate of a test curve against an anchor curve, both higher-is-better quality (see to_quality).

    Args:
        rate_anchor, quality_anchor: equal-length 1-D sequences (kbps or bits; same unit for both curves).
        rate_test, quality_test: the same for the tested codec (any number of points >= 2).
        min_overlap: minimum fraction of the union of the two quality ranges that both curves must cover.
    Returns:
        BDResult (bd_rate in percent, or None with the reason: too few points, non-monotonic curve, no or too
        little overlap).
    Raises:
        ValueError: rates and qualities of a curve differ in length.
    """
    ra, qa, why = _curve(rate_anchor, quality_anchor, 'anchor')
    if why:
        return BDResult(None, why)
    rt, qt, why = _curve(rate_test, quality_test, 'test')
    if why:
        return BDResult(None, why)
    low, high = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    union = max(qa[-1], qt[-1]) - min(qa[0], qt[0])
    overlap = max(high - low, 0.0) / union if union > 0 else 0.0
    if overlap <= 0:
        return BDResult(None, f"quality ranges do not overlap (anchor {qa[0]:.4g}..{qa[-1]:.4g}, "
                              f"test {qt[0]:.4g}..{qt[-1]:.4g})", 0.0)
    if overlap < min_overlap:
        return BDResult(None, f"quality ranges overlap {overlap:.0%} < {min_overlap:.0%} of their union "
                              f"(anchor {qa[0]:.4g}..{qa[-1]:.4g}, test {qt[0]:.4g}..{qt[-1]:.4g}); "
                              "not extrapolated", overlap)
    value = bjontegaard.bd_rate(ra, qa, rt, qt, method=INTERPOLATION, require_matching_points=False,
                                min_overlap=0.0)
    return BDResult(float(value), '', overlap)


def pareto_front(rates, qualities):
    """Indices of the operating points no other point beats (lower or equal rate and higher quality), by rate.

    Args: rates: kbps per point; qualities: higher-is-better quality per point (None: the point is skipped).
    Returns: list of indices, rates increasing and qualities strictly increasing.
    """
    order = sorted((r, -q, i) for i, (r, q) in enumerate(zip(rates, qualities)) if r is not None and q is not None)
    front, best = [], -float('inf')
    for _, negative, index in order:
        if -negative > best:
            front.append(index)
            best = -negative
    return front
