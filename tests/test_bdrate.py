"""BD-rate: identical curves give 0 %, half the rate at equal quality gives -50 %, no extrapolation."""
import numpy as np
import pytest

from evaluation.bdrate import bd_rate, quality_label, to_quality

# A realistic anchor curve (kbps, PSNR dB) of a low-delay VVC sequence at QP 37..52.
RATES = np.array([12.0, 21.5, 40.0, 78.0])
PSNR = np.array([27.1, 29.4, 31.6, 33.5])


def test_identical_curves_give_zero():
    result = bd_rate(RATES, PSNR, RATES, PSNR)
    assert result.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert result.reason == '' and result.overlap == pytest.approx(1.0)


def test_half_the_rate_at_equal_quality_gives_minus_fifty_percent():
    assert bd_rate(RATES, PSNR, RATES / 2, PSNR).bd_rate == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATES, PSNR, RATES * 2, PSNR).bd_rate == pytest.approx(100.0, abs=1e-6)


def test_points_in_any_order_and_other_point_counts():
    order = [2, 0, 3, 1]
    # log-rate linear in quality: any subset of points has the same (linear) pchip interpolant
    log_linear = 10 ** (0.1 * PSNR)
    three = bd_rate(log_linear, PSNR, (log_linear / 2)[:3][::-1], PSNR[:3][::-1], min_overlap=0.5)
    assert three.bd_rate == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATES[order], PSNR[order], RATES / 2, PSNR).bd_rate == pytest.approx(-50.0, abs=1e-6)


def test_lower_is_better_metrics_use_the_papers_normalisation():
    lpips = np.array([0.40, 0.31, 0.22, 0.15])            # falls as the rate rises
    fvd = np.array([900.0, 600.0, 400.0, 250.0])
    assert quality_label('lpips_alex') == '1-LPIPS(Alex)' and quality_label('fvd') == '5000-FVD'
    np.testing.assert_allclose(to_quality('lpips_alex', lpips), 1 - lpips)
    np.testing.assert_allclose(to_quality('fvd', fvd), 5000 - fvd)
    assert bd_rate(RATES, to_quality('fvd', fvd), RATES / 2, to_quality('fvd', fvd)).bd_rate == \
        pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATES, lpips, RATES, lpips).bd_rate is None     # raw LPIPS falls with rate: refused


def test_no_overlap_or_non_monotonic_curves_are_refused_with_a_reason():
    far = bd_rate(RATES, PSNR, RATES, PSNR + 10)
    assert far.bd_rate is None and 'do not overlap' in far.reason
    little = bd_rate(RATES, PSNR, RATES, PSNR + 5)
    assert little.bd_rate is None and 'not extrapolated' in little.reason and 0 < little.overlap < 0.75
    bumpy = bd_rate(RATES, PSNR, RATES, np.array([27.0, 30.0, 29.0, 33.0]))
    assert bumpy.bd_rate is None and 'not strictly monotonic' in bumpy.reason
    single = bd_rate(RATES, PSNR, RATES[:1], PSNR[:1])
    assert single.bd_rate is None and 'at least 2' in single.reason
    with pytest.raises(ValueError, match='equal-length'):
        bd_rate(RATES, PSNR[:3], RATES, PSNR)


def test_pareto_front_keeps_only_undominated_points():
    from evaluation.bdrate import pareto_front
    rates = [10, 5, 20, 7, 30, None]
    quality = [30, 28, 29, 31, 35, 40]          # 10 kbps / 30 is beaten by 7 kbps / 31; 20 / 29 by both
    assert pareto_front(rates, quality) == [1, 3, 4]
    assert pareto_front([1, 1], [2, 3]) == [1]
