"""Video reading and writing (PyAV), shared by the dataset, the data tools, the codec and the evaluation.

Frames are RGB uint8 arrays (H, W, 3). Frames are addressed by their decode index (0, 1, 2, ...), which assumes a
constant frame rate: the rate is the stream's average rate.

Public API: ``VideoReadError``, ``VideoInfo``, ``probe``, ``iter_frames``, ``VideoFrames`` (seeking reader),
``read_frames``, ``resample_indices``, ``write_video`` (atomic lossless / near-lossless H.264 RGB),
``write_png_folder`` (atomic), ``atomic_path``.
"""
import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Key frame interval of written clips: random access (training reads frame pairs) decodes at most this many frames.
GOP_SIZE = 25


class VideoReadError(RuntimeError):
    """A video cannot be read (missing, not a video, no video stream, no decodable frame). The message names the
    file and what to do."""


def _bad(path, reason):
    return VideoReadError(f"cannot read video '{path}': {reason}. Check that the file is a complete video that FFmpeg "
                          f"can decode (re-encode or re-download it), or remove it from the input.")


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties: ``width``, ``height`` (pixels), ``fps`` (Fraction, frames per second), ``num_frames``
    (declared by the container; 0 when unknown)."""
    width: int
    height: int
    fps: Fraction
    num_frames: int


@contextlib.contextmanager
def _open_video(path):
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise _bad(path, f"not a readable video container ({error})") from error
    with container:
        if not container.streams.video:
            raise _bad(path, "the file has no video stream (empty or zero-frame file)")
        yield container, container.streams.video[0]


def _stream_fps(stream):
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoReadError(f"video stream of '{stream.container.name}' declares no frame rate; re-encode it with a "
                             f"constant frame rate (ffmpeg -i IN -r 25 OUT.mp4).")
    return Fraction(rate)


def probe(path):
    """Stream properties of the first video stream of ``path`` -> ``VideoInfo``, without decoding.

    Raises ``VideoReadError`` for a missing, unreadable or stream-less file."""
    with _open_video(path) as (_, stream):
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, _stream_fps(stream),
                         int(stream.frames or 0))


def resample_indices(fps, target_fps, start=0, end=None, max_frames=None):
    """Source frame indices to keep for temporal resampling, and the output frame rate.

    Output frame k shows the source frame nearest in time: ``start + round(k * fps / out_fps)``, with
    ``out_fps = min(fps, target_fps)`` (a slower source keeps its rate: frames are never duplicated; an integer rate
    ratio, e.g. 50 -> 25 fps, keeps every 2nd frame exactly).

    Args:
        fps: source rate (Fraction or number, frames/s). target_fps: wanted rate or None (keep the source rate).
        start: first source index; end: source index after the last (None: open-ended).
        max_frames: at most this many output frames (None: no cap).
    Returns:
        (generator of increasing source indices, out_fps as Fraction).
    """
    fps = Fraction(fps).limit_denominator(100000)
    out_fps = fps if target_fps is None else min(fps, Fraction(target_fps).limit_denominator(100000))
    ratio = fps / out_fps

    def indices():
        k = 0
        while max_frames is None or k < max_frames:
            index = start + int(k * ratio + Fraction(1, 2))  # round half up, exact in rationals
            if end is not None and index >= end:
                return
            yield index
            k += 1
    return indices(), out_fps


def iter_frames(path, indices=None):
    """Decode frames of ``path`` -> yields (source index, frame (H, W, 3) uint8 RGB).

    Args:
        indices: increasing iterable of source frame indices to return (None: every frame). Decoding stops after the
            last wanted index or at the end of the video, whichever comes first.
    Raises:
        VideoReadError: unreadable file, no video stream, decoding error, or not a single decodable frame.
    """
    wanted = iter(indices) if indices is not None else None
    target = next(wanted, None) if wanted is not None else 0
    produced = decoded = 0
    with _open_video(path) as (container, stream):
        stream.thread_type = 'AUTO'
        try:
            for index, frame in enumerate(container.decode(stream)):
                if target is None:
                    break
                decoded += 1
                if wanted is None or index == target:
                    yield index, frame.to_ndarray(format='rgb24')
                    produced += 1
                    target = next(wanted, None) if wanted is not None else index + 1
        except av.FFmpegError as error:
            raise _bad(path, f"decoding failed after {produced} frames ({error})") from error
    if decoded == 0:
        raise _bad(path, "the video holds no decodable frame (zero-frame or corrupt file)")
    if produced == 0 and target is not None:
        raise VideoReadError(f"'{path}' has {decoded} frames, none in the requested range (first wanted index "
                             f"{target}); check the frame range (start/end) given for this clip.")


class VideoFrames:
    """Lazy, seeking frame reader for one video file (the data sets' random access; :func:`iter_frames` reads in
    order).

    ``num_frames`` comes from the demuxed packets (cached per file); ``read(indices)`` seeks to the key frame before
    each requested frame and decodes forward only as far as needed. A file whose container declares more frames than
    it holds (truncated download), that has no video stream or that fails to decode raises ``VideoReadError``.
    """

    def __init__(self, path):
        self.path = str(path)

    def _index(self):
        stat = os.stat(self.path)
        key = (self.path, stat.st_size, stat.st_mtime_ns)
        if key not in _VIDEO_INDEX_CACHE:
            _VIDEO_INDEX_CACHE[key] = self._build_index()
        return _VIDEO_INDEX_CACHE[key]

    def _build_index(self):
        pts, key_pts = [], []
        with _open_video(self.path) as (container, stream):
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    stamp = packet.pts if packet.pts is not None else packet.dts
                    if stamp is None:
                        raise _bad(self.path, "packets without timestamps")
                    pts.append(stamp)
                    if packet.is_keyframe:
                        key_pts.append(stamp)
                declared = stream.frames
            except av.FFmpegError as error:
                raise _bad(self.path, f"demuxing failed ({error})") from error
        if not pts:
            raise _bad(self.path, "the video stream holds no frames")
        if declared and declared != len(pts):
            raise _bad(self.path, f"truncated: the container declares {declared} frames but holds {len(pts)}")
        if not key_pts:
            raise _bad(self.path, "no key frame")
        return np.sort(np.asarray(pts, dtype=np.int64)), np.sort(np.asarray(key_pts, dtype=np.int64))

    @property
    def num_frames(self):
        """Number of frames (int), from the cached packet index."""
        return len(self._index()[0])

    def read(self, indices):
        """Frames at ``indices`` (ints in [0, num_frames)) -> list of uint8 arrays (H, W, 3), in the given order."""
        pts, key_pts = self._index()
        wanted = {int(pts[i]): i for i in indices}
        found = {}
        with _open_video(self.path) as (container, stream):
            try:
                frames, position = None, None
                for target in sorted(wanted):
                    if target in found:
                        continue
                    key = int(key_pts[max(np.searchsorted(key_pts, target, side='right') - 1, 0)])
                    if frames is None or position is None or not key <= position < target:
                        frames = self._seek(container, stream, key)
                    position = self._decode_until(frames, target, wanted, found)
                    if target not in found:  # the seek landed past the target: decode from the first key frame
                        frames = self._seek(container, stream, int(key_pts[0]))
                        position = self._decode_until(frames, target, wanted, found)
                    if target not in found:
                        raise _bad(self.path, f"frame {wanted[target]} (pts {target}) could not be decoded")
            except av.FFmpegError as error:
                raise _bad(self.path, f"decoding failed ({error})") from error
        return [found[int(pts[i])] for i in indices]

    @staticmethod
    def _seek(container, stream, key_pts):
        container.seek(key_pts, backward=True, any_frame=False, stream=stream)
        return container.decode(stream)

    @staticmethod
    def _decode_until(frames, target, wanted, found):
        """Decode until presentation time ``target`` (kept in ``found`` with any other wanted frame met on the way);
        returns the last decoded pts (None at the end of the stream)."""
        for frame in frames:
            if frame.pts in wanted and frame.pts not in found:
                found[frame.pts] = frame.to_ndarray(format='rgb24')
            if frame.pts is None or frame.pts >= target:
                return frame.pts
        return None

    def __iter__(self):
        """Every frame in order, one uint8 array (H, W, 3) at a time (:func:`iter_frames`)."""
        for _, frame in iter_frames(self.path):
            yield frame


# Frame index per video file, keyed by (path, size, mtime): built once per process from the packets, never by decoding.
_VIDEO_INDEX_CACHE = {}


def read_frames(path, indices=None):
    """All (or the given) frames of ``path`` as one array (T, H, W, 3) uint8, and the stream's fps (Fraction).
    Raises ``VideoReadError`` (see ``iter_frames``)."""
    fps = probe(path).fps
    frames = [frame for _, frame in iter_frames(path, indices)]
    return np.stack(frames), fps


@contextlib.contextmanager
def atomic_path(path, replace_folder=True):
    """The one atomic writer: yield a temporary sibling path of ``path`` (a file or a folder) to write; on success
    it replaces ``path`` (``os.replace``), on error it is removed, so ``path`` is never left half-written.

    The temporary name ``.<name>.tmp<PID>.<random><suffix>`` names the writer (leftovers of a killed run are removed
    by the next one, see :mod:`tempfiles`), is unique within the process (two threads may write the same output) and
    keeps the suffix, so writers that infer the format from it work. Nothing is created at that name: the caller
    creates the file (or the folder, e.g. ``tmp.mkdir()``), so it gets the usual permissions (0o666 / 0o777 less the
    umask). A written file is fsynced before it replaces ``path``. Missing parent folders are created.

    Args:
        path: the output (str or Path).
        replace_folder: what a written folder does to an existing folder at ``path``: True removes it with its
            files; False replaces it only if it is empty (``os.rmdir``, which never deletes a file).
    Yields:
        the temporary path (Path).
    Raises:
        OSError: ``path`` cannot be replaced (e.g. a non-empty folder with ``replace_folder=False``); whatever the
            caller's block raises passes through after the temporary is removed.
    """
    from tempfiles import remove_stale_siblings, tmp_prefix
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path)                         # leftovers of a killed earlier run
    tmp = path.with_name(f'{tmp_prefix(path.name)}.{secrets.token_hex(4)}{path.suffix}')
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, 'rb') as handle:
                os.fsync(handle.fileno())
        if path.is_dir() and not path.is_symlink() and tmp.is_dir():
            if replace_folder:
                shutil.rmtree(path)
            else:
                path.rmdir()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def write_video(path, frames, fps, crf=0):
    """Write RGB frames to an H.264 RGB (``libx264rgb``, 4:4:4, no colour conversion) MP4, atomically.

    Args:
        path: output ``.mp4``. frames: iterable of (H, W, 3) uint8 RGB, all the same size (H, W even or odd).
        fps: frame rate (Fraction or number). crf: 0 = mathematically lossless (x264 ``qp 0``); 1..12 = visually
            lossless constant-quality coding (smaller files).
    Returns:
        number of frames written (int).
    Raises:
        ValueError: bad crf, no frame, or frames of different sizes.
    """
    if not 0 <= int(crf) <= 12:
        raise ValueError(f"crf must be in 0..12 (0 = lossless, <= 12 visually lossless), got {crf}")
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode='w', format='mp4') as container:
            stream = container.add_stream('libx264rgb', rate=Fraction(fps).limit_denominator(100000))
            stream.pix_fmt = 'rgb24'
            stream.options = {'qp': '0'} if int(crf) == 0 else {'crf': str(int(crf))}
            stream.options['preset'] = 'faster'
            stream.codec_context.gop_size = GOP_SIZE
            for frame in frames:
                if count == 0:
                    stream.width, stream.height = frame.shape[1], frame.shape[0]
                elif frame.shape[:2] != (stream.height, stream.width):
                    raise ValueError(f"frame {count} has size {frame.shape[:2]}, expected {(stream.height, stream.width)}")
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format='rgb24')))
                count += 1
            if count == 0:
                raise ValueError(f"no frame to write to '{path}'")
            container.mux(stream.encode(None))
    return count


def write_png_folder(path, frames):
    """Write frames as ``path/0000000.png, 0000001.png, ...`` (FOMM frame-folder layout), atomically (the folder
    appears complete or not at all). Returns the number of frames written; raises ValueError for no frame."""
    from PIL import Image
    count = 0
    with atomic_path(path) as tmp:
        tmp.mkdir()
        for count, frame in enumerate(frames, start=1):
            Image.fromarray(frame).save(tmp / f"{count - 1:07d}.png")
        if count == 0:
            raise ValueError(f"no frame to write to '{path}'")
    return count
