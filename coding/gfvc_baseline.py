"""The GFVC keypoint coders, the comparison points for our context-adaptive coder.

Two modes, on the same integer DPCM residuals as :mod:`coding.keypoint_coder` (quantization is shared, so every
coder reconstructs identical keypoints); both map a residual v to a non-negative integer (v > 0 -> 2v - 1,
v <= 0 -> -2v) and binarize it with Exp-Golomb order 0:

- :func:`encode` / :func:`decode`, *GFVC-style*: the whole clip (the first frame predicted from zero) in one
  stream, every bin coded with one adaptive binary model kept across frames (integer counts, start 1/1, +1 per bin,
  halved when the total exceeds 256, a short window like CABAC's state machine) by constriction's range coder,
  flushed once. Bit-exact everywhere; cheaper than the reference software, which restarts per frame.
- :func:`encode_frame_file` / :func:`decode_frame_file` / :func:`reference_frame_bits`, *faithful* to the JVET GFVC
  reference software's FV2V keypoint path, one file per inter frame, counted by its size. Facts and where they
  come from (GFVC_Software, github.com/xyzysz/GFVC_Software_v2 and its copy github.com/Goluck-Konuko/GFVC):

  * ``source/FV2V_encoder.py`` (``FV2VKPEncoder.encode_kp``): every inter frame's residual against the previous
    reconstructed frame is written by ``final_encoder_expgolomb`` to its own ``frameNNNN.bin``, and its cost is
    ``os.path.getsize(bin_file) * 8``; the reference (I) frame's keypoints come from the decoded picture and cost
    nothing.
  * ``source/arithmetic/value_encoder.py`` (``final_encoder_expgolomb``, ``dataconvert_expgolomb``,
    ``list_binary_expgolomb``): the signed-to-unsigned map above; the bins of all residuals concatenated after one
    leading ``'1'`` marker bin; a new ``PpmModel(0, 3, 2)`` (order 0, symbols 0 / 1 / 2, 2 = escape and EOF) and a
    new ``ArithmeticEncoder(256, ...)`` (256-bit state) per file; each bin coded by ``encode_symbol``, then the EOF
    symbol 2, then ``finish()``.
  * ``source/arithmetic/expgolomb_encode_decode.py`` (``exponential_golomb_encode``): n -> floor(log2(n + 1))
    zeros, then n + 1 in binary (= :func:`coding.keypoint_coder.exp_golomb_bits` at order 0).
  * Nayuki's Reference-arithmetic-coding (github.com/nayuki/Reference-arithmetic-coding, ``python/ppmmodel.py``,
    ``python/arithmeticcoding.py``, ``python/ppm-compress.py``), on which the GFVC files are built: the order-0
    context starts with all counts 0 and the escape count 1 (never incremented); a bin whose count is 0 (and EOF)
    is coded as an escape in that context, then in the order -1 context (a flat table of the 3 symbols); each
    coded bin increments its count; ``finish()`` writes a single 1 bit; ``BitOutputStream.close()`` pads the last
    byte with zeros. The coder: range = high - low + 1, low' = low + cum_low * range // total, high' = low +
    cum_high * range // total - 1, shift out equal top bits (with the pending underflow bits), then E3 underflow
    while low = 01... and high = 10....

  Measured on the integer residuals of the first 100 frames of the 8 test clips (``python -m
  benchmarks.bench_codec``): 69.2 bits per inter frame, the number the GFVC software gives on them (issue 12).
"""
import constriction
import numpy as np

from coding.bitstream import BitstreamError
from coding.keypoint_coder import MAX_ABS_Q, MAX_EG_PREFIX, exp_golomb_bits, read_exp_golomb

COUNT_LIMIT = 256
STATE_BITS = 256                # the reference software's ArithmeticEncoder(256, ...)
ESCAPE = 2                      # escape in the order-0 context, EOF in the order -1 context


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


class _ArithmeticCoder:
    """Nayuki's arithmetic coder (see the module docstring) with a ``STATE_BITS``-bit state: the shared range
    update; ``bits`` collects the encoder's output, ``read_bit`` (decoder) supplies input bits."""

    def __init__(self, read_bit=None):
        self.full = 1 << STATE_BITS
        self.half, self.quarter, self.mask = self.full >> 1, self.full >> 2, self.full - 1
        self.low, self.high = 0, self.mask
        self.pending, self.bits, self.read_bit = 0, [], read_bit
        self.code = 0
        if read_bit is not None:
            for _ in range(STATE_BITS):
                self.code = (self.code << 1) | read_bit()

    def update(self, cum_low, cum_high, total):
        span = self.high - self.low + 1
        self.low, self.high = self.low + cum_low * span // total, self.low + cum_high * span // total - 1
        while not (self.low ^ self.high) & self.half:
            if self.read_bit is None:
                bit = self.low >> (STATE_BITS - 1)
                self.bits += [bit] + [bit ^ 1] * self.pending
                self.pending = 0
            else:
                self.code = ((self.code << 1) & self.mask) | self.read_bit()
            self.low, self.high = (self.low << 1) & self.mask, ((self.high << 1) & self.mask) | 1
        while self.low & ~self.high & self.quarter:
            if self.read_bit is None:
                self.pending += 1
            else:
                self.code = (self.code & self.half) | ((self.code << 1) & (self.mask >> 1)) | self.read_bit()
            self.low = (self.low << 1) & (self.mask >> 1)
            self.high = ((self.high << 1) & (self.mask >> 1)) | self.half | 1

    def target(self, total):
        """Decoder: the cumulative count the code value points at, in [0, total)."""
        return ((self.code - self.low + 1) * total - 1) // (self.high - self.low + 1)


class _PpmOrder0:
    """The reference software's ``PpmModel(0, 3, 2)`` with its encode / decode of one symbol: counts of bins 0 and
    1 (start 0) and of the escape (fixed 1); an unseen bin and EOF go through the escape to a flat 3-symbol table."""

    def __init__(self, coder):
        self.coder, self.counts = coder, [0, 0, 1]

    def encode(self, symbol):
        c = self.counts
        if symbol != ESCAPE and c[symbol]:
            self.coder.update(c[0] if symbol else 0, c[0] + (c[1] if symbol else 0), sum(c))
        else:
            self.coder.update(c[0] + c[1], sum(c), sum(c))
            self.coder.update(symbol, symbol + 1, 3)
        if symbol != ESCAPE:
            c[symbol] += 1

    def decode(self):
        c = self.counts
        value = self.coder.target(sum(c))
        symbol = 0 if value < c[0] else 1 if value < c[0] + c[1] else ESCAPE
        self.coder.update(sum(c[:symbol]), sum(c[:symbol + 1]), sum(c))
        if symbol == ESCAPE:
            symbol = self.coder.target(3)
            self.coder.update(symbol, symbol + 1, 3)
        if symbol != ESCAPE:
            c[symbol] += 1
        return symbol


def encode_frame_file(residuals):
    """One inter frame's ``.bin`` file as the GFVC reference software writes it (see the module docstring).

    Args: residuals: integers (any shape), the frame's DPCM residuals, |v| <= 2 * MAX_ABS_Q.
    Returns: the file's bytes; its size x 8 is the frame's cost in bits.
    Raises: ValueError for non-integer or out-of-range residuals.
    """
    residuals = np.asarray(residuals)
    if not np.issubdtype(residuals.dtype, np.integer) or np.any(np.abs(residuals) > 2 * MAX_ABS_Q):
        raise ValueError(f'expected integer residuals within +-{2 * MAX_ABS_Q}, got {residuals.dtype}')
    coder = _ArithmeticCoder()
    model = _PpmOrder0(coder)
    model.encode(1)                                         # the marker bin
    for value in residuals.ravel().tolist():
        for bit in exp_golomb_bits(_to_unsigned(value), 0):
            model.encode(bit)
    model.encode(ESCAPE)                                    # EOF
    bits = coder.bits + [1]                                 # finish(), then zero padding to a byte
    bits += [0] * (-len(bits) % 8)
    return np.packbits(np.array(bits, np.uint8)).tobytes()


def decode_frame_file(data, count):
    """Inverse of :func:`encode_frame_file`.

    Args: data: the file's bytes; count: number of residuals it must hold.
    Returns: int64 (count,) residuals.
    Raises: BitstreamError for data that is not such a file of ``count`` residuals.
    """
    bits = np.unpackbits(np.frombuffer(data, np.uint8)).tolist()
    position = iter(bits)
    model = _PpmOrder0(_ArithmeticCoder(read_bit=lambda: next(position, 0)))
    limit = 1 + count * (2 * MAX_EG_PREFIX + 1)              # most bins ``count`` residuals can take
    bins = []
    while (symbol := model.decode()) != ESCAPE:
        bins.append(symbol)
        if len(bins) > limit:
            raise BitstreamError(f'GFVC frame file holds more bins than {count} residuals can take')
    if not bins or bins[0] != 1:
        raise BitstreamError('GFVC frame file lacks its marker bin')
    stream = iter(bins[1:])

    def read_bit():
        bit = next(stream, None)
        if bit is None:
            raise BitstreamError('GFVC frame file ends inside a residual')
        return bit

    residuals = [_to_signed(read_exp_golomb(read_bit, 0)) for _ in range(count)]
    if next(stream, None) is not None:
        raise BitstreamError(f'GFVC frame file holds more than {count} residuals')
    return np.array(residuals, dtype=np.int64)


def reference_frame_bits(q, key_frames=(0,)):
    """Bits the GFVC reference software spends on each inter frame of a clip (the size x 8 of its frame file).

    Args: q: int (T, K, 3) quantized keypoints; key_frames: indices of the key (I) frames, which cost no keypoint
        bits (their keypoints come from the decoded picture), 0 among them.
    Returns: int64 array, one entry per inter frame in order: the bits of the residual against the previous frame.
    Raises: ValueError for a wrong shape or key_frames without 0.
    """
    q = np.asarray(q)
    if q.ndim != 3 or q.shape[-1] != 3 or not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f'expected integer keypoints (T, K, 3), got {q.dtype} {q.shape}')
    if 0 not in key_frames:
        raise ValueError('frame 0 must be a key frame')
    q = q.astype(np.int64)
    return np.array([8 * len(encode_frame_file(q[t] - q[t - 1])) for t in range(len(q)) if t not in key_frames],
                    dtype=np.int64)
