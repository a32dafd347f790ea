"""The ``.s2d`` bitstream: one file holding everything the decoder needs besides the checkpoint.

Version 2 and 3 layout (all integers little-endian)::

    magic      4 bytes  b'S2DC'
    version    1 byte   (3 if any key frame is predicted, else 2)
    header section
    segments: for each key-reference frame, in frame order,
        key frame section   raw Annex-B VVC bitstream (.266) of the segment's first frame: an intra picture, or
                            (predicted) the bytes that follow the previous segments' key-frame sections in a
                            prefix-stable chain (coding.vvc.VVCBackend.encode_chain)
        keypoint section    the segment's keypoints, coded by the header's keypoint coder
    index section
    footer     u64 byte offset of the index section | b'S2DX'

    each section is: length u32 | payload (length bytes) | CRC-32 of the payload u32 (zlib.crc32)

    header payload (34 bytes + the two names):
        width u16, height u16           frame size in pixels
        fps_num u32, fps_den u32        frame rate as a rational, frames/s
        num_kp u16                      K
        kp_step f64                     keypoint quantization step
        codec_len u8, codec ascii       key-frame VVC encoder: one of coding.vvc.BACKENDS
        coder_len u8, coder ascii       keypoint entropy coder: a name of coding.keypoint_coder.CODERS
        weights_id 8 bytes              identifies the model weights (modules.build.weights_id)
    index payload: segment_count u32, then per segment (17 bytes in version 2, 18 in version 3):
        start_frame u32, frame_count u32, qp u8, [v3: flags u8, bit 0 = predicted key frame,
        other bits 0], offset u64 (file offset of its key frame section)

A segment's keypoints are predicted from its own key frame's coded keypoints (the keypoint coder restarts). An intra
segment is self-contained; a predicted segment's key frame is decoded from the key-frame sections of the segments
back to the last intra one (VVC pictures only: no keypoints or rendering before it). Files without predicted key
frames are written as version 2, byte for byte what version-2 writers wrote. The index, read from the end of the file, lets a decoder
seek to the key frame at or before any frame without reading what comes before it (:class:`S2DFile`).

Version 1 files (one key frame; header with frame count and QP, then key frame and keypoint sections, no index)
are still read: they become one segment coded with keypoint coder ``V1_KP_CODER``.

Every length and offset is checked against the bytes left and against sane limits before anything is sliced or
read, so a corrupt or hostile file ends in :class:`BitstreamError`, never in a large allocation. The reported size
of a coded video is the file size x 8 bits: nothing is outside this file except the checkpoint.
"""
import dataclasses
import io
import math
import os
import stat
import struct
import zlib
from fractions import Fraction

from coding.vvc import BACKENDS as KEY_FRAME_CODECS

MAGIC = b'S2DC'
VERSION = 3                           # the newest version; pack writes the lowest that holds the stream
FOOTER_MAGIC = b'S2DX'
V1_KP_CODER = 'ctx36'                 # the only keypoint coder of version-1 files
SECTION_OVERHEAD = 8                  # length + CRC-32 bytes around each payload
PREAMBLE = len(MAGIC) + 1             # magic + version
FOOTER = struct.Struct('<Q4s')        # index offset + footer magic
MAX_FILE_BYTES = 1 << 30
MAX_KEY_FRAME_BYTES = 64 << 20
MAX_FRAMES = 10 ** 7
MAX_SIDE = 16384
MAX_KP = 1024
MAX_NAME = 32
MAX_CHAIN = 64                        # key frames in one prediction chain (an intra one + predicted ones)
_HEADER = struct.Struct('<HHIIHd')     # v2, up to kp_step; codec name, coder name and weights_id follow
_HEADER_V1 = struct.Struct('<HHIIIHdB')  # v1, up to qp; codec name and weights_id follow
_INDEX_ENTRY = {2: struct.Struct('<IIBQ'), 3: struct.Struct('<IIBBQ')}
PREDICTED = 1                         # index flags bit: the key frame continues the previous segment's chain
WEIGHTS_ID_BYTES = 8
_MAX_HEADER_BYTES = _HEADER_V1.size + 2 * (1 + MAX_NAME) + WEIGHTS_ID_BYTES


class BitstreamError(ValueError):
    """A .s2d bitstream is malformed, truncated, corrupt, or made for other model weights."""


@dataclasses.dataclass
class Segment:
    """One key-reference frame and the keypoints of the frames it drives.

    Attributes:
        start_frame: index of its key frame in the clip. frame_count: frames in the segment (>= 1, the key
            frame included). qp: the key frame's QP.
        key_frame: raw VVC bitstream bytes (b'' in an index entry not yet read). keypoints: keypoint payload bytes.
        predicted: the key frame is coded after the previous segment's (its bytes continue that chain; see the
            module doc); False for an intra key frame.
    """
    start_frame: int
    frame_count: int
    qp: int
    key_frame: bytes = b''
    keypoints: bytes = b''
    predicted: bool = False


@dataclasses.dataclass
class S2DStream:
    """Parsed content of a ``.s2d`` file.

    Attributes:
        width, height: frame size in pixels. fps: frame rate (Fraction, frames/s).
        num_kp: K keypoints per frame. kp_step: keypoint quantization step (keypoints in [-1, 1]).
        key_codec: one of coding.vvc.BACKENDS. kp_coder: keypoint coder name (coding.keypoint_coder.CODERS).
        weights_id: 8 bytes identifying the model weights.
        segments: list of :class:`Segment`, contiguous from frame 0.
    """
    width: int
    height: int
    fps: Fraction
    num_kp: int
    kp_step: float
    key_codec: str
    kp_coder: str
    weights_id: bytes
    segments: list

    @property
    def frame_count(self):
        """T: frames in the clip, all segments together."""
        return sum(s.frame_count for s in self.segments)

    def segment_at(self, frame):
        """Index of the segment holding ``frame`` (its key frame is at or before it).

        Raises: ValueError if frame is outside [0, frame_count).
        """
        if not 0 <= frame < self.frame_count:
            raise ValueError(f'frame {frame} is outside the clip\'s {self.frame_count} frames (0..'
                             f'{self.frame_count - 1})')
        return max(i for i, s in enumerate(self.segments) if s.start_frame <= frame)

    def segment(self, i):
        """Segment ``i`` (the same call as :meth:`S2DFile.segment`, for a stream already in memory)."""
        return self.segments[i]

    @property
    def stream(self):
        """This stream (the same attribute as :attr:`S2DFile.stream`)."""
        return self

    def load(self):
        """This stream, every segment in memory (the same call as :meth:`S2DFile.load`)."""
        return self

    def header_bytes(self):
        """The header section's payload. Raises: BitstreamError if a field is out of range."""
        _validate(self)
        codec, coder = self.key_codec.encode('ascii'), self.kp_coder.encode('ascii')
        return (_HEADER.pack(self.width, self.height, self.fps.numerator, self.fps.denominator, self.num_kp,
                             self.kp_step)
                + bytes([len(codec)]) + codec + bytes([len(coder)]) + coder + self.weights_id)

    @property
    def version(self):
        """The format version :func:`pack` writes: 3 if a key frame is predicted, else 2."""
        return 3 if any(s.predicted for s in self.segments) else 2

    def chain_start(self, i):
        """Index of the intra segment whose key-frame chain segment ``i``'s key frame continues (``i`` itself if
        its key frame is intra)."""
        while self.segments[i].predicted:
            i -= 1
        return i

    def index_bytes(self, offsets):
        """The index section's payload for segments starting at file ``offsets`` (list of int)."""
        entries = []
        for s, offset in zip(self.segments, offsets):
            fields = (s.start_frame, s.frame_count, s.qp) + ((PREDICTED * s.predicted,) if self.version == 3 else ())
            entries.append(_INDEX_ENTRY[self.version].pack(*fields, offset))
        return struct.pack('<I', len(self.segments)) + b''.join(entries)

    def section_bits(self):
        """Bits of each part of the (version 2 or 3) file: dict with 'header' (magic, version, header section), 'index'
        (index section and footer), and per segment 'key_frames' and 'keypoints' (lists, framing included);
        everything adds up to the file size x 8."""
        return {'header': 8 * (PREAMBLE + SECTION_OVERHEAD + len(self.header_bytes())),
                'index': 8 * (SECTION_OVERHEAD + len(self.index_bytes([0] * len(self.segments))) + FOOTER.size),
                'key_frames': [8 * (SECTION_OVERHEAD + len(s.key_frame)) for s in self.segments],
                'keypoints': [8 * (SECTION_OVERHEAD + len(s.keypoints)) for s in self.segments]}


def _validate(s):
    problems = []
    if not (2 <= s.width <= MAX_SIDE and 2 <= s.height <= MAX_SIDE):
        problems.append(f'frame size {s.width}x{s.height} outside 2..{MAX_SIDE}')
    if not (isinstance(s.fps, Fraction) and 0 < s.fps <= 1000 and s.fps.numerator < 2 ** 32
            and s.fps.denominator < 2 ** 32):
        problems.append(f'frame rate {s.fps} is not a positive rational up to 1000 fps')
    if not 1 <= s.num_kp <= MAX_KP:
        problems.append(f'number of keypoints {s.num_kp} outside 1..{MAX_KP}')
    if not (math.isfinite(s.kp_step) and 1e-6 <= s.kp_step <= 1):
        problems.append(f'kp_step {s.kp_step} outside [1e-6, 1]')
    if s.key_codec not in KEY_FRAME_CODECS:
        problems.append(f'key-frame codec {s.key_codec!r} is not one of {KEY_FRAME_CODECS}')
    if not (s.kp_coder.isascii() and s.kp_coder.isprintable() and 1 <= len(s.kp_coder) <= MAX_NAME):
        problems.append(f'keypoint coder name {s.kp_coder!r} is not 1..{MAX_NAME} printable ASCII characters')
    if not (isinstance(s.weights_id, bytes) and len(s.weights_id) == WEIGHTS_ID_BYTES):
        problems.append(f'weights_id must be {WEIGHTS_ID_BYTES} bytes')
    problems += _segment_problems(s.segments)
    if problems:
        raise BitstreamError('invalid .s2d header: ' + '; '.join(problems))


def _segment_problems(segments):
    if not segments:
        return ['no segment (a clip has at least its key-reference frame)']
    problems, start, chain = [], 0, 0
    for i, s in enumerate(segments):
        if s.start_frame != start or not 1 <= s.frame_count <= MAX_FRAMES:
            problems.append(f'segment {i} covers frames {s.start_frame}..{s.start_frame + s.frame_count - 1}, '
                            f'segments must be non-empty and follow each other from frame 0 (expected start {start})')
            break
        if not 0 <= s.qp <= 63:
            problems.append(f'segment {i}: QP {s.qp} outside 0..63')
        if s.predicted and i == 0:
            problems.append('segment 0 has a predicted key frame, but nothing comes before it to predict from')
        chain = chain + 1 if s.predicted else 1
        if chain > MAX_CHAIN:
            problems.append(f'segment {i}: more than {MAX_CHAIN} key frames in one prediction chain')
            break
        start += s.frame_count
    if start > MAX_FRAMES:
        problems.append(f'frame count {start} outside 1..{MAX_FRAMES}')
    return problems


def _section(payload):
    return struct.pack('<I', len(payload)) + payload + struct.pack('<I', zlib.crc32(payload))


def max_keypoint_bytes(num_kp, frame_count):
    """Largest keypoint section of ``frame_count`` frames any coder may write: 10 bytes per value + 64 (every
    registered coder must stay within it)."""
    return 64 + 10 * 3 * num_kp * frame_count


def pack(stream):
    """Serialize an :class:`S2DStream` to the bytes of a ``.s2d`` file (version ``stream.version``: 2 unless a key
    frame is predicted).

    Raises: BitstreamError if a header field is out of range or a payload is too large.
    """
    out = bytearray(MAGIC + bytes([stream.version]) + _section(stream.header_bytes()))
    offsets = []
    for s in stream.segments:
        if len(s.key_frame) > MAX_KEY_FRAME_BYTES:
            raise BitstreamError(f'key frame of {len(s.key_frame)} bytes exceeds {MAX_KEY_FRAME_BYTES}')
        if len(s.keypoints) > max_keypoint_bytes(stream.num_kp, s.frame_count):
            raise BitstreamError('keypoint payload is larger than any valid stream of this size')
        offsets.append(len(out))
        out += _section(s.key_frame) + _section(s.keypoints)
    index_offset = len(out)
    out += _section(stream.index_bytes(offsets)) + FOOTER.pack(index_offset, FOOTER_MAGIC)
    return bytes(out)


class _Reader:
    """Bounded reads from a seekable binary file of known size."""

    def __init__(self, handle, size):
        self.handle, self.size, self.pos = handle, size, 0

    def seek(self, pos):
        self.handle.seek(pos)
        self.pos = pos

    def take(self, n, what):
        left = self.size - self.pos
        if n > left:
            raise BitstreamError(f'truncated .s2d file: {what} needs {n} bytes at offset {self.pos}, '
                                 f'only {left} left (incomplete download or copy?)')
        chunk = self.handle.read(n)
        if len(chunk) != n:
            raise BitstreamError(f'truncated .s2d file: {what} could not be read at offset {self.pos}')
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


def _name(payload, pos, what):
    if pos >= len(payload):
        raise BitstreamError(f'corrupt .s2d header: it ends before the {what}')
    length = payload[pos]
    name = payload[pos + 1:pos + 1 + length]
    if len(name) != length:
        raise BitstreamError(f'corrupt .s2d header: it ends inside the {what}')
    return name.decode('ascii', errors='replace'), pos + 1 + length


def _parse_header(payload, version):
    """Header fields (dict) and, for version 1, the segment list without payloads."""
    layout = _HEADER_V1 if version == 1 else _HEADER
    if len(payload) < layout.size + 1:
        raise BitstreamError(f'corrupt .s2d header: {len(payload)} bytes, too short')
    values = layout.unpack(payload[:layout.size])
    codec, pos = _name(payload, layout.size, 'key-frame codec name')
    if version == 1:
        width, height, fps_num, fps_den, frames, num_kp, kp_step, qp = values
        coder, segments = V1_KP_CODER, [Segment(0, frames, qp)]
    else:
        width, height, fps_num, fps_den, num_kp, kp_step = values
        coder, pos = _name(payload, pos, 'keypoint coder name')
        segments = []
    if len(payload) != pos + WEIGHTS_ID_BYTES:
        raise BitstreamError(f'corrupt .s2d header: {len(payload)} bytes do not match its layout')
    if fps_den == 0:
        raise BitstreamError('invalid .s2d header: frame rate denominator is 0')
    return dict(width=width, height=height, fps=Fraction(fps_num, fps_den), num_kp=num_kp, kp_step=kp_step,
                key_codec=codec, kp_coder=coder, weights_id=bytes(payload[-WEIGHTS_ID_BYTES:]), segments=segments)


class S2DFile:
    """Random access to a ``.s2d`` file: the header and index are read and checked when it is opened, each segment
    (key frame + keypoints, CRC-checked) when it is asked for, so seeking reads nothing before the wanted segment.

    Args:
        source: a path (only a regular file is read: a FIFO, device or folder is refused without blocking) or the
            bytes of a file.
    Attributes:
        stream: :class:`S2DStream` with the header fields and the index (segments without payloads).
        version: the file's format version (1, 2 or 3).
    Raises: FileNotFoundError; BitstreamError for a wrong magic, an unsupported version, truncation, a CRC
        mismatch, out-of-range fields, an inconsistent index, or bytes outside the sections.
    Use as a context manager (or call :meth:`close`) to release a file.
    """

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if len(data) > MAX_FILE_BYTES:
                raise BitstreamError(f'{len(data)} bytes is larger than any .s2d file ({MAX_FILE_BYTES})')
            handle, size = io.BytesIO(data), len(data)
        else:
            handle, size = _open_regular(source)
        self._reader = _Reader(handle, size)
        try:
            self._read_index()
        except BaseException:
            handle.close()
            raise

    def _read_index(self):
        reader = self._reader
        magic = reader.take(len(MAGIC), 'the magic number')
        if magic != MAGIC:
            raise BitstreamError(f'not a Sparse2Dense .s2d bitstream: starts with {magic!r}, expected {MAGIC!r}')
        self.version = reader.take(1, 'the version')[0]
        if not 1 <= self.version <= VERSION:
            raise BitstreamError(f'.s2d version {self.version} is not supported by this decoder (it reads versions '
                                 f'1 to {VERSION}); use the codec release that wrote the file')
        fields = _parse_header(reader.section('header', _MAX_HEADER_BYTES), self.version)
        self.stream = S2DStream(**fields)
        if self.version == 1:
            _validate(self.stream)
            self._offsets, self._end = [reader.pos], reader.size
            return
        header_end = reader.pos
        if reader.size < header_end + FOOTER.size:
            raise BitstreamError('truncated .s2d file: no room for the index footer (incomplete download or copy?)')
        reader.seek(reader.size - FOOTER.size)
        index_offset, footer_magic = FOOTER.unpack(reader.take(FOOTER.size, 'the footer'))
        if footer_magic != FOOTER_MAGIC:
            raise BitstreamError(f'truncated or corrupt .s2d file: it does not end with the index footer '
                                 f'{FOOTER_MAGIC!r} (incomplete download or copy?)')
        if not header_end < index_offset <= reader.size - FOOTER.size:
            raise BitstreamError(f'corrupt .s2d file: index offset {index_offset} outside the file')
        reader.seek(index_offset)
        layout = _INDEX_ENTRY[self.version]
        limit = 4 + layout.size * ((index_offset - header_end) // (2 * SECTION_OVERHEAD))
        index = reader.section('index', limit)
        if reader.pos != reader.size - FOOTER.size:
            raise BitstreamError('corrupt .s2d file: unexpected bytes between the index and the footer')
        (count,) = struct.unpack('<I', index[:4]) if len(index) >= 4 else (None,)
        if count is None or len(index) != 4 + count * layout.size:
            raise BitstreamError('corrupt .s2d index: its length does not match its segment count')
        entries = [layout.unpack_from(index, 4 + i * layout.size) for i in range(count)]
        segments = []
        for start, frames, qp, *flags, _ in entries:
            flag = flags[0] if flags else 0
            if flag & ~PREDICTED:
                raise BitstreamError(f'corrupt .s2d index: unknown segment flags {flag:#x}')
            segments.append(Segment(start, frames, qp, predicted=bool(flag & PREDICTED)))
        self.stream.segments = segments
        if self.version == 3 and not any(s.predicted for s in self.stream.segments):
            raise BitstreamError('corrupt .s2d file: version 3 without a predicted key frame (written as version 2)')
        _validate(self.stream)
        self._offsets, self._end = [offset for *_, offset in entries], index_offset
        bounds = self._offsets + [self._end]
        if bounds[0] != header_end or any(b - a < 2 * SECTION_OVERHEAD for a, b in zip(bounds, bounds[1:])):
            raise BitstreamError('corrupt .s2d index: segment offsets do not follow each other from the header '
                                 'to the index')

    def segment(self, i):
        """Segment ``i`` with its key frame and keypoint payloads (read and CRC-checked now).

        Raises: IndexError for a bad i; BitstreamError for a truncated, corrupt or oversized segment.
        """
        entry = self.stream.segments[i]
        end = self._offsets[i + 1] if i + 1 < len(self._offsets) else self._end
        reader = self._reader
        reader.seek(self._offsets[i])
        key_frame = reader.section('key frame', MAX_KEY_FRAME_BYTES)
        keypoints = reader.section('keypoints', max_keypoint_bytes(self.stream.num_kp, entry.frame_count))
        if reader.pos != end:
            raise BitstreamError(f'corrupt .s2d file: {end - reader.pos} unexpected bytes after segment {i}'
                                 if reader.pos < end else f'corrupt .s2d file: segment {i} overruns its index entry')
        return dataclasses.replace(entry, key_frame=key_frame, keypoints=keypoints)

    def load(self):
        """Every segment read: the whole file as an :class:`S2DStream`."""
        return dataclasses.replace(self.stream, segments=[self.segment(i) for i in range(len(self.stream.segments))])

    def close(self):
        """Release the file."""
        self._reader.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_regular(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BitstreamError(f'{path} is not a regular file (a FIFO, device or folder): refused')
    if info.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise BitstreamError(f'{path} has {info.st_size} bytes, larger than any .s2d file')
    return os.fdopen(fd, 'rb'), info.st_size


def parse(data):
    """Parse and check the bytes of a ``.s2d`` file (version 1, 2 or 3), every segment included.

    Args: data: bytes.
    Returns: :class:`S2DStream`.
    Raises: BitstreamError for a wrong magic, an unsupported version, truncation, a CRC mismatch,
        out-of-range header fields, an inconsistent index, or bytes after the last section.
    """
    with S2DFile(data) as handle:
        return handle.load()


def check_weights(stream, weights_id):
    """Raise BitstreamError unless the bitstream was made with the given model weights.

    Args: stream: S2DStream; weights_id: 8 bytes of the loaded checkpoint.
    """
    if stream.weights_id != weights_id:
        raise BitstreamError(f'this bitstream was made with model weights {stream.weights_id.hex()}, '
                             f'but the checkpoint has weights {weights_id.hex()}: decode with the '
                             f'checkpoint that was used for encoding')


def read(path):
    """Read and parse a whole ``.s2d`` file (see :class:`S2DFile` to read only what a seek needs).

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a symlink to one is refused without
    blocking), and never more than MAX_FILE_BYTES bytes.

    Raises: FileNotFoundError; BitstreamError (see :func:`parse`), also for a file that is not a regular file or
        is too large to be a bitstream (checked before reading).
    """
    with S2DFile(path) as handle:
        return handle.load()


def write_atomic(path, data):
    """Write bytes to ``path`` atomically through :func:`video_io.atomic_path` (temporary sibling, fsync, then
    os.replace; the file follows the umask; leftovers of killed writers are removed). Raises OSError."""
    from video_io import atomic_path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
