"""Keypoint quantization + entropy coding (coding/keypoint_coder.py) and the GFVC-style coder."""
import numpy as np
import pytest

from coding import gfvc_baseline
from coding import keypoint_coder as kc
from coding.bitstream import BitstreamError

K = 15


def round_trip(q, kp_step=0.01):
    enc = kc.KeypointEncoder(q.shape[1], kp_step)
    ideal = [enc.encode_frame(frame) for frame in q]
    payload = enc.finish()
    dec = kc.KeypointDecoder(payload, q.shape[1], kp_step)
    out = np.stack([dec.decode_frame() for _ in range(len(q))])
    dec.finish()
    np.testing.assert_array_equal(out, q)
    assert 8 * len(payload) - 32 <= sum(ideal) + 1 and sum(ideal) <= 8 * len(payload)
    return payload, ideal


def motion(rng, frames=60, scale=0.02):
    """Random-walk keypoints in [-1, 1] with per-coordinate motion speeds (some still, some fast)."""
    speed = scale * rng.choice([0.05, 0.3, 1.0], size=(1, K, 3))
    walk = np.cumsum(rng.laplace(size=(frames, K, 3)) * speed, axis=0)
    return np.clip(rng.uniform(-0.6, 0.6, size=(1, K, 3)) + walk, -1, 1)


def test_quantize_and_dequantize():
    rng = np.random.default_rng(0)
    kp = rng.uniform(-1, 1, size=(5, K, 3)).astype(np.float32)
    q = kc.quantize(kp, 0.01)
    assert q.dtype == np.int64 and np.abs(q).max() <= 100
    assert np.abs(kc.dequantize(q, 0.01) - kp).max() <= 0.005 + 1e-6
    with pytest.raises(ValueError, match='NaN'):
        kc.quantize(np.full((K, 3), np.nan), 0.01)
    with pytest.raises(ValueError, match='kp_step'):
        kc.quantize(kp, 0.0)
    with pytest.raises(ValueError, match='exceed'):
        kc.quantize(np.full((K, 3), 1e12), 0.01)


@pytest.mark.parametrize('kind', ['random_walk', 'uniform_random', 'zeros', 'constant', 'huge',
                                  'single_frame', 'alternating'])
def test_round_trip(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    if kind == 'random_walk':
        q = kc.quantize(motion(rng), 0.01)
    elif kind == 'uniform_random':
        q = rng.integers(-300, 301, size=(20, K, 3))
    elif kind == 'zeros':
        q = np.zeros((40, K, 3), np.int64)
    elif kind == 'constant':
        q = np.full((40, K, 3), -73, np.int64)
    elif kind == 'huge':  # every escape path: residuals up to 2 * MAX_ABS_Q
        q = rng.choice([-kc.MAX_ABS_Q, kc.MAX_ABS_Q, 0, 9, -9, 8, -8, 10 ** 6], size=(10, K, 3))
    elif kind == 'single_frame':
        q = rng.integers(-100, 101, size=(1, K, 3))
    else:
        q = np.where(np.arange(30)[:, None, None] % 2 == 0, 5, -5) * np.ones((1, K, 3), np.int64)
    payload, ideal = round_trip(q.astype(np.int64))
    if kind in ('zeros', 'constant'):
        assert np.mean(ideal[1:]) < 0.1 * 3 * K  # adaptive model learns the zero residual fast


def test_key_frame_costs_about_log2_of_range():
    rng = np.random.default_rng(1)
    for kp_step in (0.005, 0.02):
        q = kc.quantize(rng.uniform(-1, 1, size=(1, K, 3)), kp_step)
        _, ideal = round_trip(q, kp_step)
        assert ideal[0] / (3 * K) < np.log2(2 / kp_step) + 3


def test_bad_frames_are_rejected():
    enc = kc.KeypointEncoder(K, 0.01)
    with pytest.raises(ValueError, match='integer keypoints'):
        enc.encode_frame(np.zeros((K, 3)))
    with pytest.raises(ValueError, match='integer keypoints'):
        enc.encode_frame(np.zeros((K + 1, 3), np.int64))


def test_garbage_payload_raises_bitstream_error_or_decodes():
    rng = np.random.default_rng(2)
    with pytest.raises(BitstreamError, match='32-bit words'):
        kc.KeypointDecoder(b'abc', K, 0.01)
    for _ in range(30):
        payload = rng.integers(0, 256, size=4 * int(rng.integers(0, 20)), dtype=np.uint8).tobytes()
        try:
            dec = kc.KeypointDecoder(payload, K, 0.01)
            for _ in range(int(rng.integers(1, 10))):
                assert dec.decode_frame().shape == (K, 3)
        except BitstreamError:
            pass


def test_ours_beats_gfvc_style_at_identical_keypoints():
    rng = np.random.default_rng(3)
    ours = gfvc = 0
    for _ in range(4):
        q = kc.quantize(motion(rng, frames=100), 0.01)
        ours += len(round_trip(q)[0])
        payload = gfvc_baseline.encode(q)
        np.testing.assert_array_equal(gfvc_baseline.decode(payload, len(q), K), q)
        gfvc += len(payload)
    assert ours < 0.95 * gfvc


def test_gfvc_style_round_trip_and_errors():
    q = np.array([[[0, 5, -5]], [[2 ** 30, -2 ** 30, 7]]], np.int64)
    np.testing.assert_array_equal(gfvc_baseline.decode(gfvc_baseline.encode(q), 2, 1), q)
    with pytest.raises(BitstreamError):
        gfvc_baseline.decode(b'\x00' * 5, 2, 1)


def test_gfvc_reference_frame_file_round_trip_size_and_errors():
    rng = np.random.default_rng(5)
    residuals = rng.integers(-40, 41, size=(K, 3))
    data = gfvc_baseline.encode_frame_file(residuals)
    np.testing.assert_array_equal(gfvc_baseline.decode_frame_file(data, residuals.size), residuals.ravel())
    # an all-zero frame: 46 bins '1' under the adaptive order-0 model (the first one escapes to the flat table),
    # then EOF escaping at probability 1/47: about 1.6 + 0.7 + 7.2 bits, the finish bit and padding -> 2 bytes
    assert len(gfvc_baseline.encode_frame_file(np.zeros((K, 3), np.int64))) == 2
    # one file per frame, restarted: a clip's inter frames cost the sum of their files, key frames nothing
    q = np.cumsum(rng.integers(-3, 4, size=(6, K, 3)), axis=0)
    bits = gfvc_baseline.reference_frame_bits(q, key_frames=(0, 3))
    assert bits.tolist() == [8 * len(gfvc_baseline.encode_frame_file(q[t] - q[t - 1])) for t in (1, 2, 4, 5)]
    with pytest.raises(BitstreamError, match='more than'):
        gfvc_baseline.decode_frame_file(data, residuals.size - 1)
    with pytest.raises(BitstreamError):
        gfvc_baseline.decode_frame_file(data, residuals.size + 1)
    with pytest.raises(BitstreamError):
        gfvc_baseline.decode_frame_file(b'\x00', 1)                  # zeros decode as an endless run of bins
    with pytest.raises(ValueError, match='key frame'):
        gfvc_baseline.reference_frame_bits(q, key_frames=(2,))


def test_gfvc_reference_costs_more_than_the_gfvc_style_stream():
    """Restarting the model and padding every frame costs bits: on a slow random walk, the per-frame files of the
    reference software add up to more than the GFVC-style stream that adapts one model across the clip."""
    q = kc.quantize(motion(np.random.default_rng(3), frames=100), 0.01)
    reference = gfvc_baseline.reference_frame_bits(q).sum()
    assert reference > 8 * len(gfvc_baseline.encode(q[1:] - q[:1]))
