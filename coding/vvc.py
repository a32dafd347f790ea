"""VVC coding of the key-reference frame and of whole sequences (the VVC anchor).

Two backends code the same standard bitstream (raw Annex-B ``.266``):

- ``vvenc`` (embedded default): the ffmpeg bundled with ``imageio-ffmpeg`` with ``libvvenc``
  (input ``yuv420p10le``, ``-qp Q -qpa 0``), decoded with ffmpeg's native ``vvc`` decoder.
  VVenC's nominal QP is not VTM's: a one-frame intra picture at ``-qp Q`` is coded with slice QP Q-3.
- ``vtm``: the JVET reference software ``EncoderApp`` / ``DecoderApp``, run as in the JVET
  generative face video coding (GFVC) test conditions: an 8-bit planar YUV 4:2:0 file,
  ``-c encoder_intra_vtm.cfg`` (``encoder_lowdelay_vtm.cfg`` for sequences), ``-q QP -f T -wdt W
  -hgt H -fr FPS --InputBitDepth=8 --OutputBitDepth=8 --Level=L``; ``DecoderApp -b BIN -o REC -d 8``.
  The executables come from arguments (the caller's :class:`VTMTools`, e.g. ``codec.py --vtm-decoder``),
  else the ``VTM_ENCODER`` / ``VTM_DECODER`` environment variables; the cfg files from ``VTM_CFG_DIR``.
  Never from a checkpoint or a bitstream: a file must not name a program to run.

Colour conversion (identical for both backends, done here in numpy so it is stated and exact):
RGB <-> Y'CbCr with the ITU-R BT.601 matrix, limited ("studio") range (Y' 16..235, Cb/Cr 16..240 at
8 bits, scaled by 4 at 10 bits), 4:2:0 chroma as the mean of each 2x2 block (centre-sited) and
upsampled back with the separable (3/4, 1/4) linear filter of centre-sited chroma. Frames must have
even width and height.

Every result records the backend name and the QP it was coded with.

Each backend is a :class:`VVCBackend` subclass (:class:`VVenC`, :class:`VTM`) with ``encode_intra``,
``encode_sequence``, ``decode`` and a ``name``; ``BACKENDS`` lists their names (the one place they are defined),
``get_backend(name)`` makes one, and the module functions ``encode_intra`` / ``encode_sequence`` / ``decode`` take
the backend by name.
"""
import dataclasses
import os
import re
import shlex
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

# BT.601 luma weights (ITU-R BT.601-7, section 2.5.1).
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB

# VVC levels (ITU-T H.266 Table A.1 / A.2): (level, MaxLumaPs in samples, MaxLumaSr in samples/s).
_VVC_LEVELS = (
    ('1', 36864, 552960), ('2', 122880, 3686400), ('2.1', 245760, 7372800),
    ('3', 552960, 16588800), ('3.1', 983040, 33177600), ('4', 2228224, 66846720),
    ('4.1', 2228224, 133693440), ('5', 8912896, 267386880), ('5.1', 8912896, 534773760),
    ('5.2', 8912896, 1069547520), ('6', 35651584, 1069547520), ('6.1', 35651584, 2139095040),
    ('6.2', 35651584, 4278190080),
)

_VVENC_LOWDELAY = 'PicReordering=0:GOPSize=8:DecodingRefreshType=none:IntraPeriod=-1'
#: low delay without the temporal pre-filter (MCTF, and BIM which needs it): MCTF filters a picture with the ones
#: after it, so without it the pictures coded so far do not depend on what follows (a prefix-stable chain); single
#: threaded: with frame-parallel coding this libvvenc wrote nothing at all for 14 or 15 pictures (ffmpeg exit code 0)
_VVENC_CHAIN = _VVENC_LOWDELAY + ':MCTF=0:BIM=0:Threads=0'


class VVCError(RuntimeError):
    """A VVC encoder/decoder is missing, failed, or returned something unusable."""


class VVCContentError(VVCError):
    """A VVC bitstream holds other pictures than expected (another size, or more of them)."""


@dataclasses.dataclass
class VVCResult:
    """Outcome of VVC coding.

    Attributes:
        bitstream: the raw Annex-B VVC bitstream (``.266``), bytes.
        frames: the decoded frames, uint8 (T, H, W, 3) RGB.
        backend: 'vvenc' or 'vtm' (the encoder that made ``bitstream``).
        qp: the QP given to that encoder (VVenC nominal QP or VTM ``-q``).
    """
    bitstream: bytes
    frames: np.ndarray
    backend: str
    qp: int

    @property
    def bits(self):
        """Size of the bitstream in bits."""
        return 8 * len(self.bitstream)


@dataclasses.dataclass
class VTMTools:
    """Where the VTM executables and cfg files are.

    Attributes:
        encoder: path of ``EncoderApp``; default ``$VTM_ENCODER``.
        decoder: path of ``DecoderApp``; default ``$VTM_DECODER``.
        cfg_dir: folder with ``encoder_intra_vtm.cfg`` and ``encoder_lowdelay_vtm.cfg``;
            default ``$VTM_CFG_DIR``.
    """
    encoder: str = None
    decoder: str = None
    cfg_dir: str = None

    def resolved(self, need=('encoder', 'decoder', 'cfg_dir')):
        """Fill unset fields from the environment and check the ``need``-ed ones exist.

        Args: need: the fields that must be found (decoding needs only 'decoder').
        Returns: a new VTMTools with absolute paths (fields not needed and not found stay None).
        Raises: VVCError naming the missing piece and the variable that sets it.
        """
        fields = {}
        for name, env, option in (('encoder', 'VTM_ENCODER', '--vtm-encoder'),
                                  ('decoder', 'VTM_DECODER', '--vtm-decoder'),
                                  ('cfg_dir', 'VTM_CFG_DIR', '--vtm-cfg-dir')):
            value = getattr(self, name) or os.environ.get(env)
            if not value:
                if name not in need:
                    fields[name] = None
                    continue
                raise VVCError(f'VTM backend: no {name} given; set the {env} environment variable '
                               f'(or codec.py {option}) to the VTM {name}, or use the vvenc backend')
            exists = os.path.isdir(value) if name == 'cfg_dir' else os.path.isfile(value)
            if not exists:
                if name not in need:
                    fields[name] = None
                    continue
                raise VVCError(f'VTM backend: {name} {value!r} (from {env} or {option}) does not exist')
            fields[name] = os.path.abspath(value)
        return VTMTools(**fields)


def _temporary_dir():
    """A temporary folder ``s2d_vvc_<PID>_*`` (removed on exit); leftovers of killed processes are removed first."""
    from tempfiles import remove_stale
    remove_stale(tempfile.gettempdir(), 's2d_vvc_')
    return tempfile.TemporaryDirectory(prefix=f's2d_vvc_{os.getpid()}_')


def ffmpeg_exe():
    """Path of the ffmpeg bundled with imageio-ffmpeg (has libvvenc and the native vvc decoder).

    Raises: VVCError if imageio-ffmpeg or its binary is missing.
    """
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise VVCError(f'ffmpeg from imageio-ffmpeg is not available ({exc}); '
                       f'install it with `pip install imageio-ffmpeg==0.8.1`') from exc


def vvc_level(width, height, fps):
    """Smallest VVC level whose picture size and luma sample rate fit (H.266 Table A.1/A.2).

    Args: width, height in pixels; fps in frames per second.
    Returns: the level as a string, e.g. '2.1' for 384x384 at 25 fps.
    Raises: VVCError if the size exceeds level 6.2.
    """
    size = width * height
    for level, max_ps, max_sr in _VVC_LEVELS:
        max_dim = int((8 * max_ps) ** 0.5)
        if size <= max_ps and width <= max_dim and height <= max_dim and size * fps <= max_sr:
            return level
    raise VVCError(f'{width}x{height} at {fps} fps exceeds every VVC level')


def _check_frames(frames):
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f'expected uint8 RGB frames (T, H, W, 3) or (H, W, 3), got {frames.dtype} '
                         f'{frames.shape}')
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f'YUV 4:2:0 needs even width and height, got {width}x{height}: '
                         f'crop or resize the frames first')
    return frames


def rgb_to_yuv420(frames, bit_depth):
    """RGB -> planar Y'CbCr 4:2:0, BT.601 limited range.

    Args:
        frames: uint8 (T, H, W, 3) RGB, H and W even.
        bit_depth: 8 or 10.
    Returns: planar file content as bytes (per frame: Y (H, W), Cb (H/2, W/2), Cr (H/2, W/2);
        uint8 for 8 bits, little-endian uint16 for 10 bits).
    """
    rgb = frames.astype(np.float64) / 255.0
    y = _KR * rgb[..., 0] + _KG * rgb[..., 1] + _KB * rgb[..., 2]
    cb = (rgb[..., 2] - y) / (2 * (1 - _KB))
    cr = (rgb[..., 0] - y) / (2 * (1 - _KR))
    t, h, w = y.shape
    cb = cb.reshape(t, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    cr = cr.reshape(t, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    scale = 1 << (bit_depth - 8)
    dtype = np.uint8 if bit_depth == 8 else np.dtype('<u2')
    planes = [np.clip(np.rint((16 + 219 * y) * scale), 0, 255 * scale).astype(dtype),
              np.clip(np.rint((128 + 224 * cb) * scale), 0, 255 * scale).astype(dtype),
              np.clip(np.rint((128 + 224 * cr) * scale), 0, 255 * scale).astype(dtype)]
    return b''.join(p[i].tobytes() for i in range(t) for p in planes)


def _upsample_chroma(c):
    """Centre-sited 4:2:0 chroma (T, h, w) -> (T, 2h, 2w) with the (3/4, 1/4) linear filter."""
    for axis in (1, 2):
        n = c.shape[axis]
        prev = np.take(c, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
        nxt = np.take(c, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
        even, odd = 0.75 * c + 0.25 * prev, 0.75 * c + 0.25 * nxt
        c = np.stack([even, odd], axis=axis + 1)
        shape = list(even.shape)
        shape[axis] *= 2
        c = c.reshape(shape)
    return c


def yuv420_to_rgb(data, width, height, bit_depth):
    """Planar Y'CbCr 4:2:0 (BT.601 limited range) -> RGB; inverse of :func:`rgb_to_yuv420`.

    Args:
        data: planar file content (bytes); 8-bit or little-endian 16-bit samples.
        width, height: frame size in pixels (even).
        bit_depth: 8 or 10.
    Returns: uint8 (T, H, W, 3) RGB.
    Raises: VVCError if the size of ``data`` is not a whole number of frames.
    """
    dtype = np.uint8 if bit_depth == 8 else np.dtype('<u2')
    samples = np.frombuffer(data, dtype=dtype)
    frame_size = width * height * 3 // 2
    if len(samples) == 0 or len(samples) % frame_size:
        raise VVCError(f'decoded YUV has {len(samples)} samples, not a multiple of one '
                       f'{width}x{height} 4:2:0 frame ({frame_size})')
    samples = samples.reshape(-1, frame_size).astype(np.float64) / (1 << (bit_depth - 8))
    t, luma, quarter = len(samples), width * height, width * height // 4
    y = (samples[:, :luma].reshape(t, height, width) - 16) / 219
    cb = (samples[:, luma:luma + quarter].reshape(t, height // 2, width // 2) - 128) / 224
    cr = (samples[:, luma + quarter:].reshape(t, height // 2, width // 2) - 128) / 224
    cb, cr = _upsample_chroma(cb), _upsample_chroma(cr)
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _run(cmd, what, cwd=None):
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise VVCError(f'{what}: cannot run {cmd[0]!r}: {exc}') from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors='replace').strip().splitlines()[-15:]
        raise VVCError(f'{what} failed (exit code {proc.returncode}): {shlex.join(cmd)}\n'
                       + '\n'.join(tail))
    return proc


def _read_output(path, what, max_bytes=None):
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise VVCError(f'{what} exited normally but wrote no output to {path}')
    if max_bytes is not None and os.path.getsize(path) > max_bytes:
        raise VVCContentError(f'{what} decoded {os.path.getsize(path)} bytes, more than the {max_bytes} bytes of the '
                       f'expected pictures: the bitstream holds more or larger pictures than announced')
    with open(path, 'rb') as f:
        return f.read()


_PROBED_SIZE = re.compile(r'Video: vvc\b[^\n]*?, (\d+)x(\d+)')


def coded_size(bitstream):
    """Picture size a VVC bitstream declares (its SPS), read without decoding (ffmpeg's stream probe).

    Args: bitstream: raw Annex-B VVC bytes.
    Returns: (width, height) in luma samples.
    Raises: VVCError if no VVC video stream is found.
    """
    with _temporary_dir() as tmp:
        src = os.path.join(tmp, 'probe.266')
        with open(src, 'wb') as f:
            f.write(bitstream)
        try:
            proc = subprocess.run([ffmpeg_exe(), '-nostdin', '-hide_banner', '-f', 'vvc', '-i', src],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VVCError(f'probing the VVC bitstream failed: {exc}') from exc
    match = _PROBED_SIZE.search(proc.stderr.decode(errors='replace'))
    if not match:
        raise VVCError('VVC decoding: not a decodable VVC bitstream (no VVC picture size found in it)')
    return int(match.group(1)), int(match.group(2))


def _check_qp(qp):
    if not isinstance(qp, (int, np.integer)) or not 0 <= qp <= 63:
        raise ValueError(f'QP must be an integer in [0, 63], got {qp!r}')
    return int(qp)


def _frame_bytes(width, height, bit_depth):
    return width * height * 3 // 2 * (1 if bit_depth == 8 else 2)


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


class VVCBackend:
    """One VVC encoder / decoder pair, the interface through which the codec, the demo and the evaluation code.

    A backend has a ``name`` (the id in ``.s2d`` headers, results and ``BACKENDS``) and these operations:
    :meth:`encode_intra` (a key-reference frame), :meth:`encode_sequence` (the low-delay anchor), :meth:`decode`,
    and, where ``chains`` is True, :meth:`encode_chain` (key frames predicted from earlier key frames).
    They check the input, code through a temporary folder and decode the result again, the same for every backend;
    a subclass supplies only the tool runs: ``_encode(frames, qp, fps, tmp, mode, tools) -> bytes`` (``mode``:
    'intra', 'lowdelay' or 'chain', the last only where the class sets ``chains = True``) and
    ``_decode(bitstream, width, height, tmp, tools, max_frames) -> uint8 (T, H, W, 3)``, plus :meth:`_tools` when it
    needs external programs (checked before any work) and :meth:`description` for reports. A new backend is a
    subclass added to ``BACKEND_CLASSES``.
    """

    #: backend id, e.g. 'vvenc'
    name = None
    #: whether :meth:`encode_chain` is supported (key frames predicted from earlier key frames)
    chains = False

    @classmethod
    def create(cls, vtm=None):
        """The backend instance; ``vtm`` (:class:`VTMTools`) is used by backends that run VTM programs."""
        return cls()

    def _tools(self, need):
        """The external programs the operation needs (``need``: their names), checked before any work; None."""
        return None

    def description(self):
        """One line for reports: which encoder and what its QP means."""
        raise NotImplementedError

    def encode_intra(self, frame, qp, fps=25):
        """Code one key-reference frame as a VVC intra picture and decode it (closed loop).

        Args:
            frame: uint8 (H, W, 3) RGB, H and W even.
            qp: integer QP in [0, 63] (VVenC nominal QP or VTM ``-q``; see the module docstring).
            fps: frame rate written into the VVC stream's timing, frames/s.
        Returns: VVCResult with ``frames`` of shape (1, H, W, 3).
        Raises: ValueError for bad input; VVCError if the encoder/decoder is missing or fails
            (the message ends with the tool's stderr tail).
        Source: JVET GFVC test conditions (key frame coded with VTM intra, encoder_intra_vtm.cfg).
        """
        frame = np.asarray(frame)
        if frame.ndim != 3:
            raise ValueError(f'encode_intra takes one frame (H, W, 3), got shape {frame.shape}')
        return self._code(frame, qp, fps, 'intra')

    def encode_sequence(self, frames, qp, fps):
        """Code a whole sequence in low-delay mode (the VVC anchor) and decode it.

        Args:
            frames: uint8 (T, H, W, 3) RGB, H and W even.
            qp: integer QP in [0, 63].
            fps: frame rate, frames/s (VTM gets it rounded to an integer, as its ``-fr`` takes).
        Returns: VVCResult with the bitstream and the T decoded frames.
        Raises: ValueError for bad input; VVCError if the encoder/decoder is missing or fails.
        Source: JVET GFVC test conditions (VVC anchor in low-delay configuration).
        """
        return self._code(frames, qp, fps, 'lowdelay')

    def encode_chain(self, frames, qp, fps):
        """Code key-reference frames as one low-delay sequence whose coded pictures do not depend on later ones: the
        bitstream of ``frames[:n]`` is a byte prefix of the bitstream of ``frames[:n + 1]``, so a key frame added
        later is sent as the bytes after that prefix (a P picture predicted from the earlier key frames) and a
        decoder appends them to what it has (coding/codec.py, inter-coded key frames).

        Args: frames: uint8 (T, H, W, 3) RGB, H and W even. qp: integer QP in [0, 63] (every picture; the low-delay
            configuration adds its own per-picture offsets to the P pictures). fps: frames/s.
        Returns: VVCResult with the bitstream and the T decoded frames.
        Raises: ValueError for bad input; VVCError if this backend has no prefix-stable mode (``chains`` False) or
            the encoder/decoder fails.
        Source: the prefix property is measured, not promised by the encoder: tests/test_vvc.py checks it.
        """
        if not self.chains:
            raise VVCError(f'the {self.name} backend cannot code predicted key frames (no prefix-stable mode)')
        return self._code(frames, qp, fps, 'chain')

    def decode(self, bitstream, width, height, max_frames=None):
        """Decode a VVC bitstream to RGB frames.

        The picture size the bitstream declares is read first (:func:`coded_size`) and must be ``width`` x
        ``height``, so a tiny bitstream of huge pictures is refused before it is decoded.

        Args:
            bitstream: raw Annex-B VVC bytes.
            width, height: the coded frame size in pixels.
            max_frames: refuse a bitstream holding more pictures than this (None: no limit); the decoded output
                is bounded accordingly.
        Returns: uint8 (T, H, W, 3) RGB.
        Raises: VVCError if the decoder is missing or fails; VVCContentError (a VVCError) if the pictures are not
            width x height or there are more than ``max_frames``.
        """
        tools = self._tools(need=('decoder',))
        coded = coded_size(bitstream)
        if coded != (width, height):
            raise VVCContentError(f'the VVC bitstream codes {coded[0]}x{coded[1]} pictures, expected '
                                  f'{width}x{height}')
        with _temporary_dir() as tmp:
            frames = self._decode(bitstream, width, height, tmp, tools, max_frames)
        if max_frames is not None and len(frames) > max_frames:
            raise VVCContentError(f'the VVC bitstream holds more than {max_frames} picture(s)')
        return frames

    def _code(self, frames, qp, fps, mode):
        frames = _check_frames(frames)
        qp = _check_qp(qp)
        if not fps or float(fps) <= 0:
            raise ValueError(f'fps must be positive, got {fps!r}')
        height, width = frames.shape[1:3]
        with _temporary_dir() as tmp:
            tools = self._tools(need=('encoder', 'decoder', 'cfg_dir'))
            bitstream = self._encode(frames, qp, fps, tmp, mode, tools)
            decoded = self._decode(bitstream, width, height, tmp, tools, None)
        if decoded.shape != frames.shape:
            raise VVCError(f'{self.name} decoded {decoded.shape[0]} frames of {decoded.shape[1:3]}, '
                           f'expected {frames.shape[0]} of {frames.shape[1:3]}')
        return VVCResult(bitstream=bitstream, frames=decoded, backend=self.name, qp=qp)


class VVenC(VVCBackend):
    """The embedded backend: imageio-ffmpeg's ffmpeg with ``libvvenc`` (10-bit input, ``-qp Q -qpa 0``; low delay:
    ``-vvenc-params PicReordering=0:GOPSize=8:DecodingRefreshType=none:IntraPeriod=-1``; key-frame chains: the same
    plus ``MCTF=0:BIM=0:Threads=0``), decoded with ffmpeg's native ``vvc`` decoder."""

    name = 'vvenc'
    chains = True

    def description(self):
        version = subprocess.run([ffmpeg_exe(), '-hide_banner', '-version'], capture_output=True,
                                 text=True).stdout.split('\n', 1)[0]
        return (f"VVenC (libvvenc in the imageio-ffmpeg ffmpeg: {version}); QP = VVenC nominal QP (-qp Q -qpa 0): a "
                "one-frame intra picture is coded at slice QP Q-3, so these QPs are not VTM QPs")

    def _encode(self, frames, qp, fps, tmp, mode, tools):
        t, height, width = frames.shape[:3]
        yuv = _write(os.path.join(tmp, 'in.yuv'), rgb_to_yuv420(frames, 10))
        out = os.path.join(tmp, 'out.266')
        rate = Fraction(fps).limit_denominator(1001)
        cmd = [ffmpeg_exe(), '-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'rawvideo',
               '-pix_fmt', 'yuv420p10le', '-s', f'{width}x{height}', '-r', str(rate), '-i', yuv,
               '-frames:v', str(t), '-c:v', 'libvvenc', '-qp', str(qp), '-qpa', '0']
        if mode != 'intra':
            cmd += ['-vvenc-params', _VVENC_CHAIN if mode == 'chain' else _VVENC_LOWDELAY]
        _run(cmd + ['-f', 'vvc', '-y', out], 'VVenC encoding (ffmpeg libvvenc)')
        return _read_output(out, 'VVenC encoding (ffmpeg libvvenc)')

    def _decode(self, bitstream, width, height, tmp, tools, max_frames):
        src = _write(os.path.join(tmp, 'dec_in.266'), bitstream)
        rec = os.path.join(tmp, 'rec.yuv')
        cmd = [ffmpeg_exe(), '-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'vvc', '-i', src,
               '-f', 'rawvideo', '-pix_fmt', 'yuv420p10le']
        if max_frames is not None:     # one picture more than allowed, to see that there are too many
            cmd += ['-frames:v', str(max_frames + 1)]
        _run(cmd + ['-y', rec], 'VVC decoding (ffmpeg native vvc decoder)')
        limit = None if max_frames is None else (max_frames + 1) * _frame_bytes(width, height, 10)
        return yuv420_to_rgb(_read_output(rec, 'VVC decoding (ffmpeg)', limit), width, height, 10)


class VTM(VVCBackend):
    """The JVET reference software as in the GFVC test conditions: ``EncoderApp -c encoder_intra_vtm.cfg``
    (``encoder_lowdelay_vtm.cfg`` for sequences) on 8-bit YUV, ``DecoderApp -d 8``.

    Args:
        tools: :class:`VTMTools` naming the programs and the cfg folder (unset fields: from the environment).
    """

    name = 'vtm'

    def __init__(self, tools=None):
        self.tools = tools or VTMTools()

    @classmethod
    def create(cls, vtm=None):
        return cls(vtm)

    def _tools(self, need):
        return self.tools.resolved(need=need)

    def description(self):
        return (f"VTM EncoderApp/DecoderApp ({self.tools.encoder or os.environ.get('VTM_ENCODER', 'VTM_ENCODER')}), "
                "QP = VTM -q as in the JVET GFVC conditions")

    def _encode(self, frames, qp, fps, tmp, mode, tools):
        t, height, width = frames.shape[:3]
        cfg = os.path.join(tools.cfg_dir, 'encoder_lowdelay_vtm.cfg' if mode == 'lowdelay'
                           else 'encoder_intra_vtm.cfg')
        if not os.path.isfile(cfg):
            raise VVCError(f'VTM cfg file {cfg} is missing; VTM_CFG_DIR must be the cfg/ folder of VTM')
        yuv = _write(os.path.join(tmp, 'in.yuv'), rgb_to_yuv420(frames, 8))
        out = os.path.join(tmp, 'out.bin')
        frame_rate = max(1, round(float(fps)))
        cmd = [tools.encoder, '-c', cfg, '-i', yuv, '-b', out, '-q', str(qp), '-f', str(t),
               '-wdt', str(width), '-hgt', str(height), '-fr', str(frame_rate),
               '--InputBitDepth=8', '--OutputBitDepth=8',
               f'--Level={vvc_level(width, height, frame_rate)}']
        _run(cmd, 'VTM EncoderApp', cwd=tmp)
        return _read_output(out, 'VTM EncoderApp')

    def _decode(self, bitstream, width, height, tmp, tools, max_frames):
        src = _write(os.path.join(tmp, 'dec_in.bin'), bitstream)
        rec = os.path.join(tmp, 'rec.yuv')
        _run([tools.decoder, '-b', src, '-o', rec, '-d', '8'], 'VTM DecoderApp', cwd=tmp)
        limit = None if max_frames is None else (max_frames + 1) * _frame_bytes(width, height, 8)
        return yuv420_to_rgb(_read_output(rec, 'VTM DecoderApp', limit), width, height, 8)


#: the backends, by name: the one list of VVC backends (``BACKENDS`` holds their names)
BACKEND_CLASSES = {cls.name: cls for cls in (VVenC, VTM)}
BACKENDS = tuple(BACKEND_CLASSES)
#: the embedded backend, used when nothing else is asked for
DEFAULT_BACKEND = VVenC.name


def get_backend(name, vtm=None):
    """The backend called ``name``.

    Args:
        name: one of :data:`BACKENDS`.
        vtm: :class:`VTMTools` for the vtm backend (default: from the environment); ignored by the others.
    Returns: a :class:`VVCBackend`.
    Raises: ValueError for an unknown name (the message lists the known ones).
    """
    if name not in BACKEND_CLASSES:
        raise ValueError(f'unknown VVC backend {name!r}; choose one of {BACKENDS}')
    return BACKEND_CLASSES[name].create(vtm)


def decode(bitstream, width, height, backend=DEFAULT_BACKEND, vtm=None, max_frames=None):
    """``get_backend(backend, vtm).decode(bitstream, width, height, max_frames)``: see :meth:`VVCBackend.decode`.
    ``backend``: 'vvenc' (ffmpeg's native vvc decoder) or 'vtm' (DecoderApp); ValueError for another name."""
    return get_backend(backend, vtm).decode(bitstream, width, height, max_frames)


def encode_intra(frame, qp, backend=DEFAULT_BACKEND, fps=25, vtm=None):
    """``get_backend(backend, vtm).encode_intra(frame, qp, fps)``: see :meth:`VVCBackend.encode_intra`.
    ``backend``: 'vvenc' (default, embedded ffmpeg) or 'vtm'; ValueError for another name."""
    return get_backend(backend, vtm).encode_intra(frame, qp, fps)


def encode_sequence(frames, qp, fps, backend=DEFAULT_BACKEND, vtm=None):
    """``get_backend(backend, vtm).encode_sequence(frames, qp, fps)``: see :meth:`VVCBackend.encode_sequence`.
    ``backend``: 'vvenc' or 'vtm'; ValueError for another name."""
    return get_backend(backend, vtm).encode_sequence(frames, qp, fps)


def auto_backend(vtm=None):
    """The preferred available backend: 'vtm' when its programs and cfg folder are found, else 'vvenc'."""
    return VTM.name if vtm_available(vtm) else VVenC.name


def vtm_available(vtm=None):
    """True if the VTM executables and cfg folder can be found (arguments or environment)."""
    try:
        (vtm or VTMTools()).resolved()
    except VVCError:
        return False
    return True
