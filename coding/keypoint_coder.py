"""Lossless coding of quantized 3D keypoints: DPCM + context-adaptive range coding (constriction).

Pipeline (Sparse2Dense, arXiv 2509.23169, sec. 2.1; GFVC keypoint coding):

1. Quantization: ``q = round(kp / kp_step)`` (integers); reconstruction ``kp_hat = q * kp_step``.
2. Key-reference frame: its keypoints ``q_0`` are sent once, each as a sign bit and an Exp-Golomb
   code of order ``k = eg_order(kp_step)`` (about ``log2(1 / kp_step)`` bits), so the decoder never
   depends on a floating-point network output.
3. Later frames: closed-loop DPCM from the previously *reconstructed* integer keypoints,
   ``r_t = q_t - q_{t-1}``; since prediction and residual are integers, encoder and decoder
   reconstruct exactly the same keypoints on any machine.
4. Each residual is a symbol of the alphabet {-8..8, escape}; an escape is followed by a sign bit
   and Exp-Golomb order 0 of ``|r| - 9``. The symbol is range coded
   (``constriction.stream.queue.RangeEncoder``) with an adaptive frequency model selected by a
   context known to the decoder:

   - the axis (x, y or depth),
   - the activity of that coordinate: an integer exponential moving average of its past
     ``|r|`` (4 classes),
   - the sign of the previous residual of the same coordinate (3 classes),

   36 contexts in all. Model ablation on real keypoint tracks (see benchmarks/bench_codec.py
   and the commit history): the keypoint index as context dilutes the statistics of short clips
   and costs bits; magnitudes of neighbouring residuals in the same frame did not pay off.
   Frequencies are integer counts (start: a fixed Laplacian-shaped table, +24 per coded symbol,
   halved when the total exceeds 4096) handed to ``constriction.stream.model.Categorical`` as exact
   float64 integers, so the coded bits are identical on every machine.

Bit costs returned per frame are the ideal code lengths (-log2 p of each coded symbol, 1 bit per
raw bit); the range coder adds at most one 32-bit word when it is flushed.
"""
import dataclasses
import math

import constriction
import numpy as np

from coding.bitstream import V1_KP_CODER, BitstreamError

MAX_DIRECT = 8                       # residuals in [-8, 8] are one symbol; others escape
ESCAPE = 2 * MAX_DIRECT + 1
#: initial counts of symbols -8..8 and escape: round(48 * exp(-|v| / 2)), escape 1 (integers, fixed)
PRIOR_COUNTS = (1, 1, 2, 4, 6, 11, 18, 29, 48, 29, 18, 11, 6, 4, 2, 1, 1, 1)
INCREMENT = 24
COUNT_LIMIT = 1 << 12
ACTIVITY_DECAY = 3                   # moving average: act <- act - act/8 + 16 |r| / 8 (units 1/16)
ACTIVITY_EDGES = (4, 12, 24)         # classes: |r| averages <= 1/4, <= 3/4, <= 1.5, above
MAX_ABS_Q = 1 << 30                  # largest |quantized keypoint| accepted (overflow guard)
MAX_EG_PREFIX = 31                   # longest Exp-Golomb prefix a valid stream can contain
#: fewest bits any inter-frame residual symbol can cost: its probability is at most (4096 - 17) / 4096
MIN_SYMBOL_BITS = -math.log2((COUNT_LIMIT - ESCAPE) / COUNT_LIMIT)
#: slack of the information bound: range-coder flush words and rounding of the coder's fixed-point probabilities
_INFO_SLACK_BITS = 128
_INFO_SLACK_RATIO = 1e-3

_BIT = constriction.stream.model.Uniform(2)


def eg_order(kp_step):
    """Exp-Golomb order used for the key frame's keypoints: about log2(1 / kp_step) - 1.

    Args: kp_step: quantization step (> 0) of keypoints in [-1, 1].
    Returns: int >= 0 (e.g. 5 for kp_step 0.01).
    """
    return max(0, int(1.0 / kp_step).bit_length() - 2)


def exp_golomb_bits(n, order):
    """Exp-Golomb binarization of order ``order`` (ITU-T H.264 9.3.2.3 style).

    Args: n: integer >= 0; order: integer >= 0.
    Returns: list of bits (0/1): ``p`` zeros, then the ``p + 1``-bit binary of ``(n >> order) + 1``,
        then the low ``order`` bits of ``n``, where ``p = floor(log2((n >> order) + 1))``.
    """
    high = (n >> order) + 1
    prefix = high.bit_length() - 1
    return ([0] * prefix + [(high >> i) & 1 for i in reversed(range(prefix + 1))]
            + [(n >> i) & 1 for i in reversed(range(order))])


def read_exp_golomb(read_bit, order):
    """Inverse of :func:`exp_golomb_bits`.

    Args: read_bit: callable returning the next bit (0/1); order: integer >= 0.
    Returns: the decoded integer n >= 0.
    Raises: BitstreamError if the prefix is longer than any valid stream contains.
    """
    prefix = 0
    while read_bit() == 0:
        prefix += 1
        if prefix > MAX_EG_PREFIX:
            raise BitstreamError('keypoint data is corrupt (Exp-Golomb prefix too long)')
    high = 1
    for _ in range(prefix + order):
        high = (high << 1) | read_bit()
    return high - (1 << order)


def max_frames(payload_bytes, num_kp):
    """Most frames a keypoint payload of this size can hold (every frame costs at least 3 K MIN_SYMBOL_BITS).

    Args: payload_bytes: size of the keypoint section; num_kp: K.
    Returns: int, an upper bound on the frame count of any valid stream of this size.
    """
    bits = (8 * payload_bytes + _INFO_SLACK_BITS) * (1 + _INFO_SLACK_RATIO)
    return 1 + int(bits / (3 * num_kp * MIN_SYMBOL_BITS))


def max_abs_quantized(kp_step):
    """Largest |q| of a keypoint in [-1, 1] quantized with ``kp_step``: round(1 / kp_step)."""
    return int(round(1.0 / kp_step))


def quantize(kp, kp_step):
    """Quantize keypoints to integers.

    Args:
        kp: float array (..., 3) of keypoints in [-1, 1] (x, y, depth).
        kp_step: quantization step, > 0.
    Returns: int64 array of the same shape, ``round(kp / kp_step)`` (round half to even).
    Raises: ValueError for a bad step, non-finite keypoints or values beyond the coder's range.
    """
    if not (isinstance(kp_step, (int, float)) and math.isfinite(kp_step) and kp_step > 0):
        raise ValueError(f'kp_step must be a positive number, got {kp_step!r}')
    kp = np.asarray(kp, dtype=np.float64)
    if not np.all(np.isfinite(kp)):
        raise ValueError('keypoints contain NaN or infinity; check the keypoint detector output')
    q = np.rint(kp / kp_step)
    if np.any(np.abs(q) > MAX_ABS_Q):
        raise ValueError(f'keypoints / kp_step exceed {MAX_ABS_Q}: keypoints must lie in [-1, 1] '
                         f'and kp_step must not be tiny (got {kp_step})')
    return q.astype(np.int64)


def dequantize(q, kp_step):
    """Reconstructed keypoints ``q * kp_step`` as float32 (same shape as ``q``), in [-1, 1]."""
    return (np.asarray(q, dtype=np.float64) * kp_step).astype(np.float32)


class _Contexts:
    """Adaptive models and context state shared, step for step, by encoder and decoder."""

    def __init__(self, num_kp):
        self.counts = np.tile(np.array(PRIOR_COUNTS, dtype=np.int64), (3 * 4 * 3, 1))
        self.activity = np.zeros((num_kp, 3), dtype=np.int64)
        self.prev_residual = np.zeros((num_kp, 3), dtype=np.int64)

    def context(self, k, axis):
        act = self.activity[k, axis]
        act_class = sum(act > edge for edge in ACTIVITY_EDGES)
        return (axis * 4 + act_class) * 3 + int(np.sign(self.prev_residual[k, axis])) + 1

    def model(self, ctx):
        counts = self.counts[ctx]
        return (constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False),
                counts)

    def update(self, ctx, symbol):
        counts = self.counts[ctx]
        counts[symbol] += INCREMENT
        if counts.sum() > COUNT_LIMIT:
            counts[:] = (counts + 1) // 2

    def end_frame(self, residual):
        clipped = np.minimum(np.abs(residual), 15) * 16
        self.activity += (clipped >> ACTIVITY_DECAY) - (self.activity >> ACTIVITY_DECAY)
        self.prev_residual = residual


class KeypointEncoder:
    """Range-codes the quantized keypoints of a sequence, one frame at a time.

    Args:
        num_kp: K, keypoints per frame.
        kp_step: quantization step (sets the key frame's Exp-Golomb order).
    Usage: ``bits = enc.encode_frame(q)`` for q (K, 3) int, first the key frame, then each later
    frame; ``payload = enc.finish()``.
    """

    def __init__(self, num_kp, kp_step):
        self.num_kp = num_kp
        self.order = eg_order(kp_step)
        self._coder = constriction.stream.queue.RangeEncoder()
        self._contexts = _Contexts(num_kp)
        self._previous = None

    def _raw(self, bits):
        for bit in bits:
            self._coder.encode(bit, _BIT)
        return len(bits)

    def encode_frame(self, q):
        """Code one frame of quantized keypoints.

        Args: q: int array (K, 3), from :func:`quantize`.
        Returns: the frame's cost in bits (ideal code length; float).
        Raises: ValueError for a wrong shape or out-of-range values.
        """
        q = np.asarray(q)
        if q.shape != (self.num_kp, 3) or not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f'expected integer keypoints ({self.num_kp}, 3), got {q.dtype} {q.shape}')
        if np.any(np.abs(q) > MAX_ABS_Q):
            raise ValueError(f'quantized keypoints exceed {MAX_ABS_Q}')
        q = q.astype(np.int64)
        if self._previous is None:
            bits = 0
            for value in q.ravel().tolist():
                bits += self._raw([int(value < 0)] + exp_golomb_bits(abs(value), self.order))
        else:
            residual = q - self._previous
            bits = 0.0
            for k in range(self.num_kp):
                for axis in range(3):
                    value = int(residual[k, axis])
                    ctx = self._contexts.context(k, axis)
                    symbol = value + MAX_DIRECT if abs(value) <= MAX_DIRECT else ESCAPE
                    model, counts = self._contexts.model(ctx)
                    self._coder.encode(symbol, model)
                    bits -= math.log2(counts[symbol] / counts.sum())
                    if symbol == ESCAPE:
                        bits += self._raw([int(value < 0)]
                                          + exp_golomb_bits(abs(value) - MAX_DIRECT - 1, 0))
                    self._contexts.update(ctx, symbol)
            self._contexts.end_frame(residual)
        self._previous = q
        return bits

    def finish(self):
        """Flush the range coder. Returns: the payload bytes (32-bit little-endian words)."""
        return self._coder.get_compressed().astype('<u4').tobytes()


class KeypointDecoder:
    """Decodes what :class:`KeypointEncoder` wrote, one frame at a time.

    Args:
        payload: the keypoint section bytes.
        num_kp: K. kp_step: the quantization step from the header.
    Raises: BitstreamError (from the constructor or :meth:`decode_frame`) for data that cannot be
        a valid keypoint stream.
    """

    def __init__(self, payload, num_kp, kp_step):
        if len(payload) % 4:
            raise BitstreamError(f'keypoint section has {len(payload)} bytes, not whole 32-bit words')
        self.num_kp = num_kp
        self.order = eg_order(kp_step)
        words = np.frombuffer(payload, dtype='<u4').astype(np.uint32)
        try:
            self._coder = constriction.stream.queue.RangeDecoder(words)
        except Exception as exc:  # constriction reports invalid data with various types
            raise BitstreamError(f'keypoint section is not a valid range-coder stream: {exc}') from exc
        self._contexts = _Contexts(num_kp)
        self._previous = None
        self.frames = 0
        self.info_bits = 0.0       # information decoded so far; a valid stream holds no more than its size
        self.info_limit = (8 * len(payload) + _INFO_SLACK_BITS) * (1 + _INFO_SLACK_RATIO)

    def _decode(self, model):
        try:
            return int(self._coder.decode(model))
        except Exception as exc:
            raise BitstreamError(f'keypoint data is corrupt (range decoder: {exc})') from exc

    def _bit(self):
        self.info_bits += 1.0
        return self._decode(_BIT)

    def decode_frame(self):
        """Decode the next frame. Returns: int64 (K, 3) quantized keypoints.

        Raises: BitstreamError if the data is corrupt or a value leaves the valid range.
        """
        if self._previous is None:
            q = np.empty((self.num_kp, 3), dtype=np.int64)
            for i in range(3 * self.num_kp):
                negative = self._bit()
                magnitude = read_exp_golomb(self._bit, self.order)
                if magnitude > MAX_ABS_Q:
                    raise BitstreamError('keypoint data is corrupt (key frame value out of range)')
                q.flat[i] = -magnitude if negative else magnitude
        else:
            residual = np.empty((self.num_kp, 3), dtype=np.int64)
            for k in range(self.num_kp):
                for axis in range(3):
                    ctx = self._contexts.context(k, axis)
                    model, counts = self._contexts.model(ctx)
                    symbol = self._decode(model)
                    self.info_bits -= math.log2(counts[symbol] / counts.sum())
                    if symbol == ESCAPE:
                        negative = self._bit()
                        magnitude = read_exp_golomb(self._bit, 0) + MAX_DIRECT + 1
                        if magnitude > 2 * MAX_ABS_Q:
                            raise BitstreamError('keypoint data is corrupt (residual out of range)')
                        value = -magnitude if negative else magnitude
                    else:
                        value = symbol - MAX_DIRECT
                    residual[k, axis] = value
                    self._contexts.update(ctx, symbol)
            self._contexts.end_frame(residual)
            q = self._previous + residual
            if np.any(np.abs(q) > MAX_ABS_Q):
                raise BitstreamError('keypoint data is corrupt (keypoint out of range)')
        if self.info_bits > self.info_limit:
            raise BitstreamError(f'keypoint data ends before frame {self.frames}: the keypoint section holds fewer '
                                 f'frames than the header announces (truncated or corrupt file)')
        self.frames += 1
        self._previous = q
        return q

    def finish(self):
        """Check that the whole payload was consumed. Raises: BitstreamError if data is left over."""
        if not self._coder.maybe_exhausted():
            raise BitstreamError('keypoint section has data after the last frame (corrupt or '
                                 'frame count mismatch)')


@dataclasses.dataclass(frozen=True)
class KeypointCoder:
    """A keypoint entropy coder plug-in, chosen by name; the ``.s2d`` header stores the name.

    Attributes:
        name: 1-32 printable ASCII characters, unique.
        encoder: class called as ``encoder(num_kp, kp_step)``; its ``encode_frame(q)`` takes int64 (K, 3) quantized
            keypoints of the next frame (the first frame of a segment is its key frame's) and returns the frame's
            ideal code length in bits; ``finish()`` returns the payload bytes.
        decoder: class called as ``decoder(payload, num_kp, kp_step)`` (raises BitstreamError for invalid data);
            ``decode_frame()`` returns the next int64 (K, 3) frame, ``finish()`` raises BitstreamError if data is
            left over.
        max_frames: callable ``(payload_bytes, num_kp) -> int``, an upper bound on the frames a valid payload of
            that size holds (the decoder refuses an index that claims more before decoding).
    A payload must never exceed coding.bitstream.max_keypoint_bytes(K, frames).
    """
    name: str
    encoder: type
    decoder: type
    max_frames: object


#: registered keypoint coders by name (:func:`register`)
CODERS = {}
#: the coder new bitstreams use unless told otherwise
DEFAULT_CODER = V1_KP_CODER


def register(coder):
    """Add a :class:`KeypointCoder` to :data:`CODERS`. Raises: ValueError if the name is taken or invalid."""
    if not (coder.name.isascii() and coder.name.isprintable() and 1 <= len(coder.name) <= 32):
        raise ValueError(f'keypoint coder name {coder.name!r} must be 1-32 printable ASCII characters')
    if coder.name in CODERS:
        raise ValueError(f'keypoint coder {coder.name!r} is already registered')
    CODERS[coder.name] = coder


def get_coder(name):
    """The registered :class:`KeypointCoder` called ``name``. Raises: ValueError naming the known coders."""
    try:
        return CODERS[name]
    except KeyError:
        raise ValueError(f'unknown keypoint coder {name!r}; registered: {sorted(CODERS)}') from None


register(KeypointCoder(V1_KP_CODER, KeypointEncoder, KeypointDecoder, max_frames))
