"""The ``.s2d`` bitstream: one file holding everything the decoder needs besides the checkpoint.

Layout (all integers little-endian)::

    magic      4 bytes  b'S2DC'
    version    1 byte   (1)
    3 sections, in this order: header, key frame, keypoints; each is
        length u32 | payload (length bytes) | CRC-32 of the payload u32 (zlib.crc32)

    header payload (41 bytes + len(codec name)):
        width u16, height u16           frame size in pixels
        fps_num u32, fps_den u32        frame rate as a rational, frames/s
        frame_count u32                 T, including the key-reference frame
        num_kp u16                      K
        kp_step f64                     keypoint quantization step
        qp u8                           QP the key frame was coded with
        codec_len u8, codec ascii       key-frame VVC encoder: 'vvenc' or 'vtm'
        weights_id 8 bytes              identifies the model weights (modules.build.weights_id)
    key frame payload: raw Annex-B VVC bitstream (.266) of frame 0
    keypoint payload: range-coder words of :mod:`coding.keypoint_coder`

Every length is checked against the bytes left and against sane limits before anything is
sliced, so a corrupt or hostile file ends in :class:`BitstreamError`, never in a large allocation.
The reported size of a coded video is the file size x 8 bits: nothing is outside this file
except the checkpoint.
"""
import dataclasses
import math
import os
import stat
import struct
import tempfile
import zlib
from fractions import Fraction

MAGIC = b'S2DC'
VERSION = 1
KEY_FRAME_CODECS = ('vvenc', 'vtm')
SECTION_OVERHEAD = 8                  # length + CRC-32 bytes around each payload
PREAMBLE = len(MAGIC) + 1             # magic + version
MAX_FILE_BYTES = 1 << 30
MAX_KEY_FRAME_BYTES = 64 << 20
MAX_FRAMES = 10 ** 7
MAX_SIDE = 16384
MAX_KP = 1024
_HEADER = struct.Struct('<HHIIIHdB')  # up to qp; codec name and weights_id follow
WEIGHTS_ID_BYTES = 8


class BitstreamError(ValueError):
    """A .s2d bitstream is malformed, truncated, corrupt, or made for other model weights."""


@dataclasses.dataclass
class S2DStream:
    """Parsed content of a ``.s2d`` file.

    Attributes:
        width, height: frame size in pixels. fps: frame rate (Fraction, frames/s).
        frame_count: T frames, including the key-reference frame. num_kp: K keypoints per frame.
        kp_step: keypoint quantization step (keypoints in [-1, 1]).
        key_codec: 'vvenc' or 'vtm'. qp: the key frame's QP.
        weights_id: 8 bytes identifying the model weights.
        key_frame: raw VVC bitstream bytes. keypoints: keypoint payload bytes.
    """
    width: int
    height: int
    fps: Fraction
    frame_count: int
    num_kp: int
    kp_step: float
    key_codec: str
    qp: int
    weights_id: bytes
    key_frame: bytes
    keypoints: bytes

    def header_bytes(self):
        """The header section's payload. Raises: BitstreamError if a field is out of range."""
        _validate(self)
        codec = self.key_codec.encode('ascii')
        return (_HEADER.pack(self.width, self.height, self.fps.numerator, self.fps.denominator,
                             self.frame_count, self.num_kp, self.kp_step, self.qp)
                + bytes([len(codec)]) + codec + self.weights_id)

    def section_bits(self):
        """Bits of each part of the file: dict with 'header' (magic, version and the header
        section), 'key_frame' and 'keypoints' (their sections, framing included); they add up to
        the file size x 8."""
        return {'header': 8 * (PREAMBLE + SECTION_OVERHEAD + len(self.header_bytes())),
                'key_frame': 8 * (SECTION_OVERHEAD + len(self.key_frame)),
                'keypoints': 8 * (SECTION_OVERHEAD + len(self.keypoints))}


def _validate(s):
    problems = []
    if not (2 <= s.width <= MAX_SIDE and 2 <= s.height <= MAX_SIDE):
        problems.append(f'frame size {s.width}x{s.height} outside 2..{MAX_SIDE}')
    if not (isinstance(s.fps, Fraction) and 0 < s.fps <= 1000 and s.fps.numerator < 2 ** 32
            and s.fps.denominator < 2 ** 32):
        problems.append(f'frame rate {s.fps} is not a positive rational up to 1000 fps')
    if not 1 <= s.frame_count <= MAX_FRAMES:
        problems.append(f'frame count {s.frame_count} outside 1..{MAX_FRAMES}')
    if not 1 <= s.num_kp <= MAX_KP:
        problems.append(f'number of keypoints {s.num_kp} outside 1..{MAX_KP}')
    if not (math.isfinite(s.kp_step) and 1e-6 <= s.kp_step <= 1):
        problems.append(f'kp_step {s.kp_step} outside [1e-6, 1]')
    if not 0 <= s.qp <= 63:
        problems.append(f'QP {s.qp} outside 0..63')
    if s.key_codec not in KEY_FRAME_CODECS:
        problems.append(f'key-frame codec {s.key_codec!r} is not one of {KEY_FRAME_CODECS}')
    if not (isinstance(s.weights_id, bytes) and len(s.weights_id) == WEIGHTS_ID_BYTES):
        problems.append(f'weights_id must be {WEIGHTS_ID_BYTES} bytes')
    if problems:
        raise BitstreamError('invalid .s2d header: ' + '; '.join(problems))


def _section(payload):
    return struct.pack('<I', len(payload)) + payload + struct.pack('<I', zlib.crc32(payload))


def pack(stream):
    """Serialize an :class:`S2DStream` to the bytes of a ``.s2d`` file.

    Raises: BitstreamError if a header field is out of range or a payload is too large.
    """
    if len(stream.key_frame) > MAX_KEY_FRAME_BYTES:
        raise BitstreamError(f'key frame of {len(stream.key_frame)} bytes exceeds {MAX_KEY_FRAME_BYTES}')
    if len(stream.keypoints) > _max_keypoint_bytes(stream):
        raise BitstreamError('keypoint payload is larger than any valid stream of this size')
    return (MAGIC + bytes([VERSION]) + _section(stream.header_bytes()) + _section(stream.key_frame)
            + _section(stream.keypoints))


def _max_keypoint_bytes(stream):
    # worst case per value: one symbol + sign + a 31-bit-prefix Exp-Golomb code < 10 bytes
    return 64 + 10 * 3 * stream.num_kp * stream.frame_count


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n, what):
        left = len(self.data) - self.pos
        if n > left:
            raise BitstreamError(f'truncated .s2d file: {what} needs {n} bytes at offset {self.pos}, '
                                 f'only {left} left (incomplete download or copy?)')
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def section(self, name, limit):
        (length,) = struct.unpack('<I', self.take(4, f'the {name} section length'))
        if length > limit:
            raise BitstreamError(f'corrupt .s2d file: {name} section claims {length} bytes, more than '
                                 f'the limit of {limit}')
        payload = self.take(length, f'the {name} section')
        (crc,) = struct.unpack('<I', self.take(4, f'the {name} section CRC-32'))
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f'CRC mismatch in the {name} section: the file is corrupted')
        return payload


def _parse_header(payload):
    fixed = _HEADER.size
    if len(payload) < fixed + 1:
        raise BitstreamError(f'corrupt .s2d header: {len(payload)} bytes, too short')
    width, height, fps_num, fps_den, frames, num_kp, kp_step, qp = _HEADER.unpack(payload[:fixed])
    codec_len = payload[fixed]
    if len(payload) != fixed + 1 + codec_len + WEIGHTS_ID_BYTES:
        raise BitstreamError(f'corrupt .s2d header: {len(payload)} bytes do not match its layout')
    codec = payload[fixed + 1:fixed + 1 + codec_len].decode('ascii', errors='replace')
    if fps_den == 0:
        raise BitstreamError('invalid .s2d header: frame rate denominator is 0')
    return dict(width=width, height=height, fps=Fraction(fps_num, fps_den), frame_count=frames,
                num_kp=num_kp, kp_step=kp_step, key_codec=codec, qp=qp,
                weights_id=bytes(payload[-WEIGHTS_ID_BYTES:]))


def parse(data):
    """Parse and check the bytes of a ``.s2d`` file.

    Args: data: bytes.
    Returns: :class:`S2DStream`.
    Raises: BitstreamError for a wrong magic, an unsupported version, truncation, a CRC mismatch,
        out-of-range header fields, or bytes after the last section.
    """
    data = bytes(data)
    if len(data) > MAX_FILE_BYTES:
        raise BitstreamError(f'{len(data)} bytes is larger than any .s2d file ({MAX_FILE_BYTES})')
    reader = _Reader(data)
    magic = reader.take(len(MAGIC), 'the magic number')
    if magic != MAGIC:
        raise BitstreamError(f'not a Sparse2Dense .s2d bitstream: starts with {magic!r}, '
                             f'expected {MAGIC!r}')
    version = reader.take(1, 'the version')[0]
    if version != VERSION:
        raise BitstreamError(f'.s2d version {version} is not supported by this decoder (it reads '
                             f'version {VERSION}); use the codec release that wrote the file')
    fields = _parse_header(reader.section('header', 255 + _HEADER.size + 1 + WEIGHTS_ID_BYTES))
    stream = S2DStream(**fields, key_frame=b'', keypoints=b'')
    _validate(stream)
    stream.key_frame = reader.section('key frame', MAX_KEY_FRAME_BYTES)
    stream.keypoints = reader.section('keypoints', _max_keypoint_bytes(stream))
    if reader.pos != len(data):
        raise BitstreamError(f'corrupt .s2d file: {len(data) - reader.pos} unexpected bytes after '
                             f'the last section')
    return stream


def check_weights(stream, weights_id):
    """Raise BitstreamError unless the bitstream was made with the given model weights.

    Args: stream: S2DStream; weights_id: 8 bytes of the loaded checkpoint.
    """
    if stream.weights_id != weights_id:
        raise BitstreamError(f'this bitstream was made with model weights {stream.weights_id.hex()}, '
                             f'but the checkpoint has weights {weights_id.hex()}: decode with the '
                             f'checkpoint that was used for encoding')


def read(path):
    """Read and parse a ``.s2d`` file.

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a symlink to one is refused without
    blocking), and never more than MAX_FILE_BYTES + 1 bytes.

    Raises: FileNotFoundError; BitstreamError (see :func:`parse`), also for a file that is not a regular file or
        is too large to be a bitstream (checked before reading).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BitstreamError(f'{path} is not a regular file (a FIFO, device or folder): refused')
    with os.fdopen(fd, 'rb') as f:
        if info.st_size > MAX_FILE_BYTES:
            raise BitstreamError(f'{path} has {info.st_size} bytes, larger than any .s2d file')
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise BitstreamError(f'{path} is larger than any .s2d file ({MAX_FILE_BYTES} bytes)')
    return parse(data)


def write_atomic(path, data):
    """Write bytes to ``path`` atomically (temporary file in the same folder, then os.replace)."""
    from tempfiles import remove_stale_siblings, tmp_prefix
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_siblings(path)                         # leftovers of a killed earlier run
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(os.path.basename(path)) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
