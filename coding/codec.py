"""Sparse2Dense encoder and decoder (library API behind ``codec.py encode`` / ``decode``).

Encoder (Sparse2Dense, arXiv 2509.23169, sec. 2.1): the first frame is the key-reference frame,
coded with VVC (:mod:`coding.vvc`) and *decoded again*; its keypoints are detected on that decoded
frame (closed loop), quantized and sent once. Every later frame is reduced to K 3D keypoints by the
keypoint detector, quantized with ``kp_step`` and DPCM + context coded (:mod:`coding.keypoint_coder`).
Everything goes into one ``.s2d`` file (:mod:`coding.bitstream`).

Decoder: decodes the key frame, encodes it once into the generator's feature volume, then for each
frame decodes its keypoints and renders the frame (dense motion, occlusion, warp, generator) and
its body vertices (vertex head), one frame at a time. Frame 0 is the decoded key frame itself.

Both take frames at the model's size (``dataset_params.frame_shape``); :func:`read_video` brings any
video there with the data tool's person-centred crop (:mod:`tools.crop`).
"""
import dataclasses
import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import torch

from coding import bitstream, keypoint_coder
from coding import vvc as vvc_lib
from modules.build import load_inference_models
from modules.render import frames_to_tensor, render_keypoints, tensor_to_frames

#: defaults when the checkpoint's config has no ``codec_params``
DEFAULT_KP_STEP = 0.01
DEFAULT_QP = 42
DEFAULT_VVC = 'vvenc'
DETECTOR_BATCH = 8


@dataclasses.dataclass
class BitAccount:
    """Where the bits of one ``.s2d`` file went; the parts add up to ``total_bits`` exactly.

    Attributes:
        header_bits: magic, version and the header section.
        key_frame_bits: the VVC key-frame section (payload + 8 bytes of framing).
        keypoint_bits: (T,) ideal code length of each frame's keypoints (frame 0: the key frame's
            keypoints sent once), bits.
        keypoint_overhead_bits: range-coder flush and framing of the keypoint section.
        total_bits: file size x 8.
        fps: frame rate (Fraction, frames/s).
    """
    header_bits: int
    key_frame_bits: int
    keypoint_bits: list
    keypoint_overhead_bits: float
    total_bits: int
    fps: Fraction

    @property
    def frame_count(self):
        """Number of frames T."""
        return len(self.keypoint_bits)

    @property
    def kbps(self):
        """Average rate in kbit/s at the clip's frame rate (total bits / duration / 1000)."""
        return self.total_bits * float(self.fps) / self.frame_count / 1000.0

    @property
    def bits_per_frame(self):
        """Average bits per frame (total bits / T)."""
        return self.total_bits / self.frame_count

    def per_frame(self):
        """(T,) bits charged to each frame: frame 0 carries the header, the key frame and the
        keypoint section overhead; later frames their keypoints. Sums to ``total_bits``."""
        bits = np.array(self.keypoint_bits, dtype=np.float64)
        bits[0] += self.header_bits + self.key_frame_bits + self.keypoint_overhead_bits
        return bits


def _codec_params(config):
    return config.get('codec_params') or {}


def _model_size(config):
    height, width = config['dataset_params']['frame_shape'][:2]
    return int(height), int(width)


def _vtm_tools(config, vtm):
    """The caller's VTM tools; a checkpoint's ``codec_params.vtm`` is ignored (files never name programs)."""
    section = _codec_params(config).get('vtm')
    if section:
        warnings.warn('ignoring codec_params.vtm in the checkpoint\'s config: VTM executables come only from '
                      'VTM_ENCODER / VTM_DECODER / VTM_CFG_DIR or the command line, never from a file',
                      stacklevel=3)
    if vtm is not None and not isinstance(vtm, vvc_lib.VTMTools):
        raise ValueError(f'vtm must be a coding.vvc.VTMTools or None, got {type(vtm).__name__}')
    return vtm


class Encoder:
    """Encodes frames to a ``.s2d`` bitstream.

    Args:
        checkpoint_path: a Sparse2Dense checkpoint (``*.pth``; see modules/build.py).
        device: torch device for the keypoint detector ('cpu', 'cuda', ...).
        kp_step: keypoint quantization step; default ``codec_params.kp_step`` of the checkpoint's
            config, else 0.01.
        qp: key-frame VVC QP in [0, 63]; default ``codec_params.qp``, else 42.
        vvc: key-frame encoder 'vvenc' or 'vtm'; default ``codec_params.vvc``, else 'vvenc'.
        vtm: coding.vvc.VTMTools naming the VTM executables (default: the VTM_* environment variables;
            a checkpoint's ``codec_params.vtm`` is ignored).
    Attributes (after :meth:`encode`):
        account: :class:`BitAccount`. keypoints: float32 (T, K, 3) reconstructed keypoints (what the
        decoder will use). quantized: int64 (T, K, 3). key_frame: uint8 (H, W, 3) decoded key frame.
    Raises: FileNotFoundError / ValueError for a bad checkpoint or parameter.
    """

    def __init__(self, checkpoint_path, device='cpu', kp_step=None, qp=None, vvc=None, vtm=None):
        self.models = load_inference_models(checkpoint_path, device)
        params = _codec_params(self.models.config)
        self.kp_step = float(kp_step if kp_step is not None else params.get('kp_step', DEFAULT_KP_STEP))
        self.qp = int(qp if qp is not None else params.get('qp', DEFAULT_QP))
        self.vvc = vvc if vvc is not None else params.get('vvc', DEFAULT_VVC)
        if not 1e-6 <= self.kp_step <= 1:
            raise ValueError(f'kp_step must be in [1e-6, 1] (keypoints lie in [-1, 1]), got {self.kp_step}')
        if not 0 <= self.qp <= 63:
            raise ValueError(f'QP must be in [0, 63], got {self.qp}')
        if self.vvc not in vvc_lib.BACKENDS:
            raise ValueError(f'unknown VVC backend {self.vvc!r}; choose one of {vvc_lib.BACKENDS}')
        self.size = _model_size(self.models.config)
        self.num_kp = self.models.config['model_params']['common_params']['num_kp']
        self.vtm = _vtm_tools(self.models.config, vtm)
        self.account = self.keypoints = self.quantized = self.key_frame = None

    def _check_frame(self, frame, index):
        frame = np.asarray(frame)
        if frame.shape != self.size + (3,) or frame.dtype != np.uint8:
            raise ValueError(f'frame {index} is {frame.dtype} {frame.shape}, the model needs uint8 '
                             f'{self.size + (3,)}: crop/resize it first (coding.codec.read_video, or '
                             f'`codec.py encode` without --no-crop)')
        return frame

    @torch.inference_mode()
    def _detect(self, frames):
        kp = self.models.kp_detector(frames_to_tensor(np.stack(frames), self.models.device))['value']
        return keypoint_coder.quantize(kp.cpu().numpy(), self.kp_step)

    def encode(self, frames, fps=25, progress=None):
        """Encode a clip.

        Args:
            frames: uint8 (T, H, W, 3) RGB array or an iterable of (H, W, 3) frames, at the model's
                size (``dataset_params.frame_shape``); T >= 1.
            fps: frame rate in frames/s (number or Fraction), stored in the header.
            progress: optional callable called with the number of frames just processed (e.g. a
                tqdm bar's ``update``).
        Returns: the ``.s2d`` bytes; see the attributes for the bit account and keypoints.
        Raises: ValueError for bad frames or parameters; coding.vvc.VVCError if VVC coding fails.
        """
        try:
            rate = float(fps)
        except (TypeError, ValueError):
            raise ValueError(f'fps must be a number, got {fps!r}') from None
        if not (math.isfinite(rate) and 0 < rate <= 1000) or Fraction(fps).limit_denominator(1001) <= 0:
            raise ValueError(f'fps must be a finite frame rate in (0, 1000] representable with a denominator '
                             f'up to 1001, got {fps!r}')
        fps = Fraction(fps).limit_denominator(1001)
        frames = iter(frames)
        try:
            first = self._check_frame(next(frames), 0)
        except StopIteration:
            raise ValueError('no frame to encode') from None
        key = vvc_lib.encode_intra(first, self.qp, backend=self.vvc, fps=fps, vtm=self.vtm)
        self.key_frame = key.frames[0]
        coder = keypoint_coder.KeypointEncoder(self.num_kp, self.kp_step)
        quantized = [self._detect([self.key_frame])[0]]  # closed loop: the decoded key frame
        bits = [coder.encode_frame(quantized[0])]
        if progress:
            progress(1)
        batch = []
        for index, frame in enumerate(frames, start=1):
            batch.append(self._check_frame(frame, index))
            if len(batch) == DETECTOR_BATCH:
                self._code_batch(batch, coder, quantized, bits, progress)
                batch = []
        if batch:
            self._code_batch(batch, coder, quantized, bits, progress)
        stream = bitstream.S2DStream(
            width=self.size[1], height=self.size[0], fps=fps, frame_count=len(quantized),
            num_kp=self.num_kp, kp_step=self.kp_step, key_codec=key.backend, qp=key.qp,
            weights_id=self.models.weights_id, key_frame=key.bitstream, keypoints=coder.finish())
        data = bitstream.pack(stream)
        sections = stream.section_bits()
        self.quantized = np.stack(quantized)
        self.keypoints = keypoint_coder.dequantize(self.quantized, self.kp_step)
        self.account = BitAccount(header_bits=sections['header'], key_frame_bits=sections['key_frame'],
                                  keypoint_bits=bits,
                                  keypoint_overhead_bits=sections['keypoints'] - sum(bits),
                                  total_bits=8 * len(data), fps=fps)
        return data

    def _code_batch(self, batch, coder, quantized, bits, progress):
        for q in self._detect(batch):
            quantized.append(q)
            bits.append(coder.encode_frame(q))
        if progress:
            progress(len(batch))


class Decoder:
    """Decodes ``.s2d`` bitstreams to frames and body vertices.

    Args:
        checkpoint_path: the checkpoint the bitstream was encoded with (checked via weights_id).
        device: torch device for the generator and vertex head.
        vtm: coding.vvc.VTMTools naming VTM's DecoderApp for 'vtm' key frames (default: $VTM_DECODER;
            a checkpoint's ``codec_params.vtm`` is ignored).
    Raises: FileNotFoundError / ValueError for a bad checkpoint.
    """

    def __init__(self, checkpoint_path, device='cpu', vtm=None):
        self.models = load_inference_models(checkpoint_path, device)
        self.size = _model_size(self.models.config)
        self.num_kp = self.models.config['model_params']['common_params']['num_kp']
        self.vtm = _vtm_tools(self.models.config, vtm)

    def parse(self, data):
        """Parse a bitstream and check it fits this checkpoint.

        Args: data: the ``.s2d`` bytes, or an already parsed bitstream.S2DStream.
        Returns: bitstream.S2DStream.
        Raises: BitstreamError for a malformed file, other model weights, or another frame size /
            keypoint count than the model's.
        """
        stream = data if isinstance(data, bitstream.S2DStream) else bitstream.parse(data)
        bitstream.check_weights(stream, self.models.weights_id)
        limit = keypoint_coder.max_frames(len(stream.keypoints), stream.num_kp)
        if stream.frame_count > limit:
            raise bitstream.BitstreamError(
                f'header announces {stream.frame_count} frames but the {len(stream.keypoints)}-byte keypoint '
                f'section can hold at most {limit}: truncated or corrupt file')
        if (stream.height, stream.width) != self.size or stream.num_kp != self.num_kp:
            raise bitstream.BitstreamError(
                f'bitstream holds {stream.width}x{stream.height} frames with {stream.num_kp} keypoints, '
                f'the checkpoint\'s model makes {self.size[1]}x{self.size[0]} with {self.num_kp}')
        return stream

    def decode_keypoints(self, data):
        """Only the keypoints: int64 (T, K, 3) quantized and float32 (T, K, 3) reconstructed.

        Raises: BitstreamError (see :meth:`parse`, and corrupt keypoint data).
        """
        stream = self.parse(data)
        quantized = np.stack(list(_keypoint_frames(stream)))
        return quantized, keypoint_coder.dequantize(quantized, stream.kp_step)

    def decode(self, data):
        """Decode a bitstream, streaming.

        Args: data: the ``.s2d`` bytes (or a parsed bitstream.S2DStream).
        Returns: an iterator of (frame uint8 (H, W, 3) RGB, vertices float32 (N, 2) in normalized
            image coordinates [-1, 1], x right, y down), one per coded frame; each frame is
            rendered when it is requested. The header, weights and key frame are checked and
            decoded before this returns.
        Raises: BitstreamError (malformed file, other weights, corrupt keypoints: the latter while
            iterating); coding.vvc.VVCError if the key frame cannot be decoded.
        """
        stream = self.parse(data)
        try:
            key = vvc_lib.decode(stream.key_frame, stream.width, stream.height, backend=stream.key_codec,
                                 vtm=self.vtm, max_frames=1)
        except vvc_lib.VVCContentError as err:
            raise bitstream.BitstreamError(f'key-frame section: {err}') from None
        if len(key) != 1:
            raise bitstream.BitstreamError(f'key-frame section holds {len(key)} pictures, expected 1')
        return self._frames(stream, key[0])

    @torch.inference_mode()
    def _frames(self, stream, key_frame):
        device = self.models.device
        keypoints = ({'value': torch.from_numpy(keypoint_coder.dequantize(q, stream.kp_step))[None].to(device)}
                     for q in _keypoint_frames(stream))
        kp_source = next(keypoints)             # frame 0's (the header holds >= 1 frame): from the decoded key frame
        rendered = render_keypoints(self.models.generator, frames_to_tensor(key_frame[None], device), kp_source,
                                    itertools.chain([kp_source], keypoints))
        for index, (_, out) in enumerate(rendered):
            vertices = self.models.vertex_head(out['F_refine'])[0].float().cpu().numpy()
            frame = key_frame if index == 0 else tensor_to_frames(out['prediction'])[0].numpy()
            yield frame, vertices


def _keypoint_frames(stream):
    """Yield the quantized keypoints (K, 3) of each frame of a parsed stream; BitstreamError if corrupt, if the
    keypoint data ends before the header's frame count, or if a keypoint leaves [-1, 1] (beyond the rounding of
    quantization: |q| <= round(1 / kp_step))."""
    decoder = keypoint_coder.KeypointDecoder(stream.keypoints, stream.num_kp, stream.kp_step)
    max_q = keypoint_coder.max_abs_quantized(stream.kp_step)
    for index in range(stream.frame_count):
        q = decoder.decode_frame()
        if np.any(np.abs(q) > max_q):
            raise bitstream.BitstreamError(
                f'keypoint data is corrupt: frame {index} has a keypoint at '
                f'{float(np.abs(q).max()) * stream.kp_step:g}, outside [-1, 1]')
        yield q
    decoder.finish()


CROP_MODES = ('person', 'center', 'none')


def read_video(path, size, crop='person', max_frames=None, fps=None):
    """Read a video for the codec: frames at the model's square size, and its frame rate.

    Args:
        path: any video PyAV reads.
        size: model frame side in pixels (square models).
        crop: 'person': the data tool's fixed person-centred square crop (tools.crop, MediaPipe
            Pose) resized to ``size``; 'center': the largest centred square, resized (for clips
            already framed, e.g. prepared by tools/prepare_dataset.py at another size); 'none':
            frames must already be size x size.
        max_frames: use at most this many frames (None: all).
        fps: temporal resampling target in frames/s (None: keep the clip's rate; never raises it),
            as the data tool does (video_io.resample_indices).
    Returns: (iterator of uint8 (size, size, 3) frames, frame count or None if unknown, fps as a
        Fraction).
    Raises: video_io.VideoReadError for an unreadable video; tools.crop.NoPersonError when
        no person is found; ValueError for an unknown mode, or with 'none' and the wrong size.
    """
    from tools.crop import CropBox, apply_crop, person_crop_box
    from video_io import iter_frames, probe, resample_indices

    if crop not in CROP_MODES:
        raise ValueError(f'crop must be one of {CROP_MODES}, got {crop!r}')
    info = probe(path)
    if crop == 'none' and (info.width, info.height) != (size, size):
        raise ValueError(f'{path} is {info.width}x{info.height} but the model needs {size}x{size}; '
                         f'drop --no-crop to crop and resize it, or resize it yourself')
    end = info.num_frames or None

    def indices():
        return resample_indices(info.fps, fps, end=end, max_frames=max_frames)[0]
    out_fps = resample_indices(info.fps, fps)[1]
    count = sum(1 for _ in indices()) if end or max_frames else None
    side = min(info.width, info.height)
    if crop == 'person':
        box = person_crop_box((frame for _, frame in iter_frames(path, indices())))
    else:
        box = CropBox((info.width - side) // 2, (info.height - side) // 2, side)

    def frames():
        for _, frame in iter_frames(path, indices()):
            yield apply_crop(frame, box, size)
    return frames(), count, out_fps
