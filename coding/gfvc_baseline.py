"""GFVC-style keypoint coder, the comparison point for our context-adaptive coder.

Written from the published description of the JVET generative face video coding (GFVC) software's
keypoint coding: quantized keypoints, DPCM from the previous frame's integers (the first frame is
predicted from zero), each residual mapped to a non-negative integer (v > 0 -> 2v - 1, v <= 0 -> -2v),
binarized with Exp-Golomb order 0, and all bins coded with one adaptive (order-0) binary arithmetic
coder. Here the arithmetic coder is constriction's range coder with an adaptive binary model kept
as integer counts (start 1/1, +1 per bin, halved when the total exceeds 256, a short window like
CABAC's state machine), so it is bit-exact everywhere. Quantization is shared with
:mod:`coding.keypoint_coder`, so both coders reconstruct identical keypoints.
"""
import constriction
import numpy as np

from coding.bitstream import BitstreamError
from coding.keypoint_coder import MAX_ABS_Q, exp_golomb_bits, read_exp_golomb

COUNT_LIMIT = 256


class _BinaryModel:
    def __init__(self):
        self.counts = np.ones(2, dtype=np.int64)

    def model(self):
        return constriction.stream.model.Categorical(self.counts.astype(np.float64), perfect=False)

    def update(self, bit):
        self.counts[bit] += 1
        if self.counts.sum() > COUNT_LIMIT:
            self.counts = (self.counts + 1) // 2


def _to_unsigned(v):
    return 2 * v - 1 if v > 0 else -2 * v


def _to_signed(u):
    return (u + 1) // 2 if u % 2 else -(u // 2)


def encode(q):
    """Code a sequence of quantized keypoints.

    Args: q: int array (T, K, 3) from :func:`coding.keypoint_coder.quantize`.
    Returns: payload bytes (32-bit little-endian words of the range coder); its size x 8 is the
        cost in bits.
    Raises: ValueError for a wrong shape or out-of-range values.
    """
    q = np.asarray(q)
    if q.ndim != 3 or q.shape[-1] != 3 or not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f'expected integer keypoints (T, K, 3), got {q.dtype} {q.shape}')
    if np.any(np.abs(q) > MAX_ABS_Q):
        raise ValueError(f'quantized keypoints exceed {MAX_ABS_Q}')
    q = q.astype(np.int64)
    residuals = np.diff(q, axis=0, prepend=np.zeros_like(q[:1]))
    coder = constriction.stream.queue.RangeEncoder()
    binary = _BinaryModel()
    for value in residuals.ravel().tolist():
        for bit in exp_golomb_bits(_to_unsigned(value), 0):
            coder.encode(bit, binary.model())
            binary.update(bit)
    return coder.get_compressed().astype('<u4').tobytes()


def decode(payload, num_frames, num_kp):
    """Inverse of :func:`encode`.

    Args: payload: bytes from :func:`encode`; num_frames: T; num_kp: K.
    Returns: int64 (T, K, 3) quantized keypoints.
    Raises: BitstreamError for data that cannot be a valid stream.
    """
    if len(payload) % 4:
        raise BitstreamError(f'GFVC-style payload has {len(payload)} bytes, not whole 32-bit words')
    try:
        coder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, '<u4').astype(np.uint32))
    except Exception as exc:
        raise BitstreamError(f'not a valid range-coder stream: {exc}') from exc
    binary = _BinaryModel()

    def read_bit():
        try:
            bit = int(coder.decode(binary.model()))
        except Exception as exc:
            raise BitstreamError(f'GFVC-style keypoint data is corrupt ({exc})') from exc
        binary.update(bit)
        return bit

    residuals = [_to_signed(read_exp_golomb(read_bit, 0)) for _ in range(num_frames * num_kp * 3)]
    q = np.cumsum(np.array(residuals, dtype=np.int64).reshape(num_frames, num_kp, 3), axis=0)
    if np.any(np.abs(q) > MAX_ABS_Q):
        raise BitstreamError('GFVC-style keypoint data is corrupt (value out of range)')
    return q
