"""Sparse2Dense encoder and decoder (library API behind ``codec.py encode`` / ``decode``).

Encoder (Sparse2Dense, arXiv 2509.23169, sec. 2.1): the first frame is a key-reference frame, coded with VVC
(:mod:`coding.vvc`) and *decoded again*; its keypoints are detected on that decoded frame (closed loop), quantized
and sent once. Every later frame is reduced to K 3D keypoints by the keypoint detector, optionally refined so that
their rendering comes closer to the original (``refine_steps``, :mod:`coding.refine`), quantized with ``kp_step``
and DPCM + entropy coded by a keypoint coder (:mod:`coding.keypoint_coder`).

Key-frame refresh (closed loop): a later frame becomes a new key-reference frame, starting a new segment whose
keypoints are predicted from its own coded keypoints, when

- a scene cut is detected between it and the previous original frame (:mod:`coding.scene`), or
- with ``refresh_threshold`` D set: the frame as the decoder will render it (from the current key frame and its
  coded keypoints) has an RGB PSNR against the original more than D dB below the best PSNR of the frames rendered
  so far from the same key frame (the quality the model reaches at this key frame and QP; the key frame itself,
  decoded by VVC, is not rendered and sets no level). The first frame after a key frame sets the level, so a segment
  holds at least two frames unless a scene cut follows at once.

Inter-coded key frames (``inter_key_frames``, VVC backends with a prefix-stable chain mode: VVenC): a key frame
refreshed for quality is coded as a P picture predicted from the key frames before it, back to the last intra one
(the first frame, a scene cut, or every ``MAX_CHAIN`` key frames). The encoder re-codes the chain of original key
frames with the new one appended (``VVCBackend.encode_chain``) and sends only the bytes after what it sent already;
the decoder decodes the chain's sections together. A chain whose earlier bytes came out different (never seen; the
backend's prefix property is tested) falls back to an intra key frame.

Everything goes into one ``.s2d`` file (:mod:`coding.bitstream`) with an index of the key frames for seeking.

Decoder: for each segment, decodes the key frame, encodes it once into the generator's feature volume, then for
each frame decodes its keypoints and renders the frame (dense motion, occlusion, warp, generator) and its body
vertices (vertex head), one frame at a time; a segment's first frame is its decoded key frame itself.

Both take frames at the model's size (``dataset_params.frame_shape``); :func:`read_video` brings any
video there with the data tool's person-centred crop (:mod:`tools.crop`).
"""
import dataclasses
import math
import warnings
from fractions import Fraction

import numpy as np
import torch

from coding import bitstream, keypoint_coder
from coding import vvc as vvc_lib
from coding.refine import refine_keypoints
from coding.scene import is_scene_cut
from modules.build import load_inference_models
from modules.render import frames_to_tensor, psnr_rgb, render_keypoints, tensor_to_frames

#: defaults when the checkpoint's config has no ``codec_params``
DEFAULT_KP_STEP = 0.01
DEFAULT_QP = 42
DEFAULT_VVC = vvc_lib.DEFAULT_BACKEND
#: measured (benchmarks/bench_refine.py, docs/REFINE.md): on the validation clips 20 warm-started steps gave the best
#: quality of 0 / 5 / 10 / 20 (mean MS-SSIM 0.912, VMAF 43.2), for about 0.65 s per frame on 2 CPU cores at 128x128
DEFAULT_REFINE_STEPS = 20
#: version of the encoder's keypoint search (coding/refine.py and Encoder._refine), part of the RD evaluation's cache
#: key so that results of an earlier search are not served: 1, every batch searched from the detector's keypoints;
#: 2, warm start from the previous frame's correction
REFINE_VERSION = 2
DETECTOR_BATCH = 8
#: most key frames in one prediction chain (intra + P pictures): bounds the encoder's re-coding (quadratic in the
#: chain length) and what a seek decodes
MAX_CHAIN = 16


@dataclasses.dataclass
class BitAccount:
    """Where the bits of one ``.s2d`` file went; the parts add up to ``total_bits`` exactly.

    Attributes:
        header_bits: magic, version and the header section.
        index_bits: the index section and footer.
        key_frames: frame index of each key-reference frame (the first is 0).
        key_frame_bits: bits of each key frame's VVC section (payload + 8 bytes of framing), aligned with key_frames.
        keypoint_bits: (T,) ideal code length of each frame's keypoints (a key frame's: its keypoints sent once),
            bits.
        keypoint_overhead_bits: per segment, the range-coder flush and framing of its keypoint section.
        total_bits: file size x 8.
        fps: frame rate (Fraction, frames/s).
        predicted: per key frame, True if it is a P picture predicted from the earlier key frames (aligned with
            key_frames).
    """
    header_bits: int
    index_bits: int
    key_frames: list
    key_frame_bits: list
    keypoint_bits: list
    keypoint_overhead_bits: list
    total_bits: int
    fps: Fraction
    predicted: list

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
        """(T,) bits charged to each frame: its keypoints; a key frame also its VVC section and its segment's
        keypoint-section overhead; frame 0 also the header and the index. Sums to ``total_bits``."""
        bits = np.array(self.keypoint_bits, dtype=np.float64)
        bits[0] += self.header_bits + self.index_bits
        for frame, key, overhead in zip(self.key_frames, self.key_frame_bits, self.keypoint_overhead_bits):
            bits[frame] += key + overhead
        return bits


def _codec_params(config):
    return config.get('codec_params') or {}


def refine_steps_of(config, steps=None):
    """The encoder's keypoint refinement steps (:mod:`coding.refine`): ``steps`` if given, else
    ``codec_params.refine_steps`` of ``config``, else DEFAULT_REFINE_STEPS.

    Raises: ValueError: not an integer >= 0.
    """
    if steps is None:
        steps = _codec_params(config).get('refine_steps', DEFAULT_REFINE_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f'refine_steps must be an integer >= 0 (0: no keypoint refinement), got {steps!r}')
    return steps


def _model_size(config):
    height, width = config['dataset_params']['frame_shape'][:2]
    return int(height), int(width)


def _frame_rate(fps):
    """fps as a Fraction with a denominator up to 1001. Raises ValueError for anything else."""
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f'fps must be a number, got {fps!r}') from None
    if not (math.isfinite(rate) and 0 < rate <= 1000) or Fraction(fps).limit_denominator(1001) <= 0:
        raise ValueError(f'fps must be a finite frame rate in (0, 1000] representable with a denominator '
                         f'up to 1001, got {fps!r}')
    return Fraction(fps).limit_denominator(1001)


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


def _frame_psnr(decoded, originals):
    """RGB PSNR in dB of uint8 (B, H, W, 3) frames against originals: (B,) numpy."""
    return psnr_rgb(frames_to_tensor(decoded), frames_to_tensor(originals)).numpy()


@dataclasses.dataclass
class _OpenSegment:
    start: int
    qp: int
    key_frame: np.ndarray           # decoded, uint8 (H, W, 3)
    key_bitstream: bytes
    predicted: bool
    kp_source: torch.Tensor         # the key frame's dequantized keypoints (1, K, 3) in [-1, 1]
    coder: object
    count: int = 1
    features: object = None         # the generator's source encoding, made when first needed
    best_psnr: float = -math.inf    # best PSNR of a frame rendered from this key frame so far
    refine_offset: object = None    # (K, 3) refined minus detected keypoints of the last frame refined against it


def default_inter_key_frames(backend):
    """Whether the encoder predicts refreshed key frames by default with VVC backend ``backend`` (a name of
    coding.vvc.BACKENDS): where the backend has a prefix-stable chain mode (``VVCBackend.chains``: VVenC)."""
    return vvc_lib.get_backend(backend).chains


class Encoder:
    """Encodes frames to a ``.s2d`` bitstream.

    Args:
        checkpoint_path: a Sparse2Dense checkpoint (``*.pth``; see modules/build.py).
        device: torch device for the keypoint detector and generator ('cpu', 'cuda', ...).
        kp_step: keypoint quantization step; default ``codec_params.kp_step`` of the checkpoint's
            config, else 0.01.
        qp: key-frame VVC QP in [0, 63]; default ``codec_params.qp``, else 42.
        vvc: key-frame encoder, one of coding.vvc.BACKENDS; default ``codec_params.vvc``, else 'vvenc'.
        vtm: coding.vvc.VTMTools naming the VTM executables (default: the VTM_* environment variables;
            a checkpoint's ``codec_params.vtm`` is ignored).
        refresh_threshold: D in dB >= 0, or None (no quality-driven refresh, nothing rendered) or math.inf (frames
            rendered and their PSNR recorded, never refreshed): a frame whose rendering is more than D dB below the
            best rendering from the same key frame so far becomes a key frame (see the module doc).
        scene_cuts: refresh at detected scene cuts (coding/scene.py).
        kp_coder: keypoint coder name (coding.keypoint_coder.CODERS); default the registry's DEFAULT_CODER.
        inter_key_frames: code key frames refreshed for quality as P pictures predicted from the earlier key frames
            (see the module doc; needs a backend with ``chains``, e.g. 'vvenc'); None (default): where the backend
            can (:func:`default_inter_key_frames`). Key frames at the start and at
            scene cuts stay intra pictures, coded in the chain's configuration (so even without refreshes the
            key frame's bytes differ from those of False).
        refine_steps: descent steps of encoder-side keypoint refinement per inter frame (:mod:`coding.refine`: the
            keypoints whose rendering from the key frame is closest to the original); 0: the detector's keypoints;
            default :func:`refine_steps_of` the checkpoint's config.
    Attributes (after :meth:`encode`):
        account: :class:`BitAccount`. keypoints: float32 (T, K, 3) reconstructed keypoints (what the
        decoder will use). quantized: int64 (T, K, 3). key_frame: uint8 (H, W, 3) the first decoded key frame.
        psnr: float64 (T,) RGB PSNR (dB) of each frame as the decoder renders it (key frames: the decoded key
        frame), NaN where nothing was rendered (refresh_threshold None). max_drop: the largest drop (dB) below
        its segment's best rendering of a frame that was *not* refreshed: any threshold above it codes the same
        stream.
    Raises: FileNotFoundError / ValueError for a bad checkpoint or parameter.
    """

    def __init__(self, checkpoint_path, device='cpu', kp_step=None, qp=None, vvc=None, vtm=None,
                 refresh_threshold=None, scene_cuts=True, kp_coder=None, inter_key_frames=None, refine_steps=None):
        self.models = load_inference_models(checkpoint_path, device)
        params = _codec_params(self.models.config)
        self.refine_steps = refine_steps_of(self.models.config, refine_steps)
        self.kp_step = float(kp_step if kp_step is not None else params.get('kp_step', DEFAULT_KP_STEP))
        self.qp = int(qp if qp is not None else params.get('qp', DEFAULT_QP))
        self.vvc = vvc if vvc is not None else params.get('vvc', DEFAULT_VVC)
        if not 1e-6 <= self.kp_step <= 1:
            raise ValueError(f'kp_step must be in [1e-6, 1] (keypoints lie in [-1, 1]), got {self.kp_step}')
        if not 0 <= self.qp <= 63:
            raise ValueError(f'QP must be in [0, 63], got {self.qp}')
        if self.vvc not in vvc_lib.BACKENDS:
            raise ValueError(f'unknown VVC backend {self.vvc!r}; choose one of {vvc_lib.BACKENDS}')
        if refresh_threshold is not None and not float(refresh_threshold) >= 0:
            raise ValueError(f'refresh threshold must be >= 0 dB (or None: no refresh), got {refresh_threshold}')
        self.refresh_threshold = None if refresh_threshold is None else float(refresh_threshold)
        self.scene_cuts = bool(scene_cuts)
        self.inter_key_frames = bool(default_inter_key_frames(self.vvc) if inter_key_frames is None
                                     else inter_key_frames)
        if self.inter_key_frames and not vvc_lib.get_backend(self.vvc).chains:
            raise ValueError(f'the {self.vvc} backend cannot code inter key frames; use vvenc or drop '
                             f'inter_key_frames (--inter-key-frames)')
        self.coder = keypoint_coder.get_coder(kp_coder or keypoint_coder.DEFAULT_CODER)
        self.size = _model_size(self.models.config)
        self.num_kp = self.models.config['model_params']['common_params']['num_kp']
        self.vtm = _vtm_tools(self.models.config, vtm)
        self.account = self.keypoints = self.quantized = self.key_frame = self.psnr = None
        self._bits, self._coded_bits = [], 0.0

    @property
    def running_kbps(self):
        """Rate of what :meth:`encode` has coded so far (key frames + keypoints; 0 before the first frame), kbit/s."""
        if self.account is not None:
            return self.account.kbps
        if not self._bits:
            return 0.0
        return self._coded_bits * float(self._fps) / len(self._bits) / 1000.0

    def _check_frame(self, frame, index):
        frame = np.asarray(frame)
        if frame.shape != self.size + (3,) or frame.dtype != np.uint8:
            raise ValueError(f'frame {index} is {frame.dtype} {frame.shape}, the model needs uint8 '
                             f'{self.size + (3,)}: crop/resize it first (coding.codec.read_video, or '
                             f'`codec.py encode` without --no-crop)')
        return frame

    @torch.inference_mode()
    def _detect(self, frames):
        """The detector's keypoints of ``frames``: float32 (B, K, 3) numpy in [-1, 1]."""
        return self.models.kp_detector(frames_to_tensor(np.stack(frames), self.models.device)).cpu().numpy()

    def _quantize(self, keypoints):
        return keypoint_coder.quantize(keypoints, self.kp_step)

    def _kp(self, quantized):
        return torch.from_numpy(keypoint_coder.dequantize(quantized, self.kp_step)).to(self.models.device)

    def encode(self, frames, fps=25, progress=None):
        """Encode a clip.

        Args:
            frames: uint8 (T, H, W, 3) RGB array or an iterable of (H, W, 3) frames, at the model's
                size (``dataset_params.frame_shape``); T >= 1. Read once, in order (frames are not kept).
            fps: frame rate in frames/s (number or Fraction), stored in the header.
            progress: optional callable called with the number of frames just coded (e.g. a tqdm bar's
                ``update``).
        Returns: the ``.s2d`` bytes; see the attributes for the bit account and keypoints.
        Raises: ValueError for bad frames or parameters; coding.vvc.VVCError if VVC coding fails.
        """
        self._fps = _frame_rate(fps)
        self._segments, self._open, self._previous, self._chain = [], None, None, None
        self._bits, self._quantized, self._psnr, self.key_frame, self.account = [], [], [], None, None
        self._coded_bits, self.max_drop = 0.0, 0.0
        batch = []
        for index, frame in enumerate(frames):
            batch.append(self._check_frame(frame, index))
            if len(batch) == DETECTOR_BATCH:
                self._code_batch(batch, progress)
                batch = []
        if batch:
            self._code_batch(batch, progress)
        if self._open is None:
            raise ValueError('no frame to encode')
        self._close_segment()
        stream = bitstream.S2DStream(
            width=self.size[1], height=self.size[0], fps=self._fps, num_kp=self.num_kp, kp_step=self.kp_step,
            key_codec=self.vvc, kp_coder=self.coder.name, weights_id=self.models.weights_id, segments=self._segments)
        data = bitstream.pack(stream)
        sections = stream.section_bits()
        self.quantized = np.stack(self._quantized)
        self.keypoints = keypoint_coder.dequantize(self.quantized, self.kp_step)
        self.psnr = np.array(self._psnr, dtype=np.float64)
        starts = [s.start_frame for s in self._segments]
        ends = starts[1:] + [len(self._bits)]
        self.account = BitAccount(
            header_bits=sections['header'], index_bits=sections['index'], key_frames=starts,
            key_frame_bits=sections['key_frames'], keypoint_bits=self._bits,
            keypoint_overhead_bits=[total - sum(self._bits[a:b]) for total, a, b in
                                    zip(sections['keypoints'], starts, ends)],
            total_bits=8 * len(data), fps=self._fps, predicted=[s.predicted for s in self._segments])
        return data

    def _code_batch(self, batch, progress):
        """Code a batch of original frames: keypoints detected together; key frames, and the renderings that
        decide them, in order."""
        cuts = []
        for frame in batch:
            cuts.append(self.scene_cuts and self._previous is not None and is_scene_cut(self._previous, frame))
            self._previous = frame
        detected = self._detect(batch)
        i = 0
        while i < len(batch):
            if cuts[i] or self._open is None:
                self._start_segment(batch[i], predict=False)
                i += 1
                continue
            end = next((j for j in range(i + 1, len(batch)) if cuts[j]), len(batch))
            quantized = self._quantize(self._refine(detected[i:end], batch[i:end]))
            refresh = None
            if self.refresh_threshold is None:
                quality = [math.nan] * (end - i)
            else:
                quality = self._rendered_psnr(quantized, batch[i:end])
                refresh = self._first_drop(quality)
            for j in range(i, end if refresh is None else i + refresh):
                self._add_frame(quantized[j - i], quality[j - i])
            if refresh is None:
                i = end
            else:
                i += refresh
                self._start_segment(batch[i], predict=self.inter_key_frames)
                i += 1
        if progress:
            progress(len(batch))

    def _first_drop(self, quality):
        """Index of the first PSNR in ``quality`` more than the threshold below the open segment's best rendered
        PSNR so far (updating that level as it goes), or None."""
        segment = self._open
        for j, value in enumerate(quality):
            if value < segment.best_psnr - self.refresh_threshold:
                return j
            self.max_drop = max(self.max_drop, segment.best_psnr - value)
            segment.best_psnr = max(segment.best_psnr, value)
        return None

    @torch.no_grad()
    def _features(self):
        """The open segment's key frame encoded by the generator (made once; not inference tensors, so that
        :meth:`_refine` can differentiate through them)."""
        segment = self._open
        if segment.features is None:
            segment.features = self.models.generator.encode_source(
                frames_to_tensor(segment.key_frame[None], self.models.device))
        return segment.features

    def _refine(self, keypoints, originals):
        """``keypoints`` (B, K, 3) numpy, the detector's, of ``originals``, refined against the open segment's key
        frame (:mod:`coding.refine`) when ``refine_steps`` > 0.

        Warm start: the search starts from the detector's keypoints plus the offset that refinement found for the
        last frame refined in this segment (neighbouring frames need nearly the same correction), so the steps of
        successive batches add up instead of starting over. Measured on the 8 validation clips (docs/REFINE.md;
        60 frames, QP 42): 10 warm-started steps matched 20 cold-started ones (mean MS-SSIM 0.907 against 0.906,
        VMAF 42.2 against 42.5, face-landmark error 1.68 against 1.66 px) in half the time."""
        if not self.refine_steps:
            return keypoints
        segment, device = self._open, self.models.device
        start = keypoints if segment.refine_offset is None else np.clip(keypoints + segment.refine_offset, -1, 1)
        refined = refine_keypoints(self.models.generator, self._features(), segment.kp_source,
                                   torch.from_numpy(start).to(device),
                                   frames_to_tensor(np.stack(originals), device), self.refine_steps).cpu().numpy()
        segment.refine_offset = refined[-1] - keypoints[-1]
        return refined

    @torch.no_grad()
    def _rendered_psnr(self, quantized, originals):
        """PSNR (dB) of each frame rendered, as the decoder will, from the open segment's key frame."""
        segment = self._open
        out = self.models.generator.render(self._features(), segment.kp_source, self._kp(np.stack(quantized)))
        return _frame_psnr(tensor_to_frames(out['prediction']).numpy(), np.stack(originals)).tolist()

    def _start_segment(self, frame, predict):
        """Close the open segment; code ``frame`` as a key-reference frame that opens the next one (``predict``: as
        a P picture continuing the key-frame chain, where it can)."""
        if self._open is not None:
            self._close_segment()
        decoded, payload, predicted = self._code_key_frame(frame, predict)
        quantized = self._quantize(self._detect([decoded]))[0]   # closed loop: keypoints of the decoded key frame
        coder = self.coder.encoder(self.num_kp, self.kp_step)
        psnr = float(_frame_psnr(decoded[None], frame[None])[0])
        self._open = _OpenSegment(start=len(self._bits), qp=self.qp, key_frame=decoded, key_bitstream=payload,
                                  predicted=predicted, kp_source=self._kp(quantized[None]), coder=coder)
        if self.key_frame is None:
            self.key_frame = decoded
        self._coded_bits += 8 * len(payload)
        self._append(coder.encode_frame(quantized), quantized, psnr)

    def _code_key_frame(self, frame, predict):
        """VVC-code a key frame: (decoded uint8 (H, W, 3), the bytes to send, predicted?). Intra unless ``predict``
        and the open chain has room; with ``inter_key_frames`` an intra key frame starts a new chain."""
        backend = vvc_lib.get_backend(self.vvc, self.vtm)
        if not self.inter_key_frames:
            key = backend.encode_intra(frame, self.qp, fps=self._fps)
            return key.frames[0], key.bitstream, False
        chain = self._chain
        if predict and chain is not None and len(chain[0]) < MAX_CHAIN:
            frames, sent = chain[0] + [frame], chain[1]
            key = backend.encode_chain(np.stack(frames), self.qp, fps=self._fps)
            if key.bitstream.startswith(sent) and len(key.bitstream) > len(sent):
                self._chain = (frames, key.bitstream)
                return key.frames[-1], key.bitstream[len(sent):], True
            warnings.warn(f'{self.vvc} re-coded the earlier key frames differently: key frame coded intra')
        key = backend.encode_chain(frame[None], self.qp, fps=self._fps)
        self._chain = ([frame], key.bitstream)
        return key.frames[0], key.bitstream, False

    def _add_frame(self, quantized, psnr):
        self._append(self._open.coder.encode_frame(quantized), quantized, psnr)
        self._open.count += 1

    def _append(self, bits, quantized, psnr):
        self._bits.append(bits)
        self._coded_bits += bits
        self._quantized.append(quantized)
        self._psnr.append(psnr)

    def _close_segment(self):
        segment = self._open
        self._segments.append(bitstream.Segment(segment.start, segment.count, segment.qp, segment.key_bitstream,
                                                segment.coder.finish(), predicted=segment.predicted))
        self._open = None


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

    def open(self, data):
        """Open a bitstream for decoding and check it fits this checkpoint (only the header and index are read).

        Args: data: the ``.s2d`` bytes, a path, an open bitstream.S2DFile, or a parsed bitstream.S2DStream.
        Returns: a bitstream.S2DFile or S2DStream (both have ``segment(i)`` / ``segments``; see :meth:`decode`).
        Raises: BitstreamError for a malformed file, other model weights, another frame size / keypoint count than
            the model's, an unknown keypoint coder, or a segment claiming more frames than its data can hold.
        """
        source = data if isinstance(data, (bitstream.S2DFile, bitstream.S2DStream)) else bitstream.S2DFile(data)
        stream = source.stream
        bitstream.check_weights(stream, self.models.weights_id)
        if (stream.height, stream.width) != self.size or stream.num_kp != self.num_kp:
            raise bitstream.BitstreamError(
                f'bitstream holds {stream.width}x{stream.height} frames with {stream.num_kp} keypoints, '
                f'the checkpoint\'s model makes {self.size[1]}x{self.size[0]} with {self.num_kp}')
        try:
            keypoint_coder.get_coder(stream.kp_coder)
        except ValueError as err:
            raise bitstream.BitstreamError(f'this bitstream needs a keypoint coder this decoder lacks: {err}') from None
        return source

    def parse(self, data):
        """The whole bitstream, parsed and checked (see :meth:`open`). Returns: bitstream.S2DStream."""
        source = self.open(data)
        stream = source.load()
        for segment in stream.segments:
            _check_segment_size(stream, segment)
        return stream

    def decode_keypoints(self, data):
        """Only the keypoints: int64 (T, K, 3) quantized and float32 (T, K, 3) reconstructed.

        Raises: BitstreamError (see :meth:`open`, and corrupt keypoint data).
        """
        stream = self.parse(data)
        quantized = np.concatenate([np.stack(list(_keypoint_frames(stream, segment))) for segment in stream.segments])
        return quantized, keypoint_coder.dequantize(quantized, stream.kp_step)

    def decode(self, data, start_frame=0):
        """Decode a bitstream, streaming.

        Args:
            data: the ``.s2d`` bytes, a path, a bitstream.S2DFile or a parsed bitstream.S2DStream.
            start_frame: first frame to output; decoding starts at the key frame at or before it (the index says
                where), and nothing of the file before that key frame is read or decoded.
        Returns: an iterator of (frame uint8 (H, W, 3) RGB, vertices float32 (N, 2) in normalized
            image coordinates [-1, 1], x right, y down), one per coded frame from ``start_frame`` on; each
            frame is rendered when it is requested, each later key frame decoded when its segment is reached. The
            header, index, weights and the first key frame are checked and decoded before this returns.
        Raises: BitstreamError (malformed file, other weights, corrupt segments: the latter while iterating);
            ValueError for a start_frame outside the clip; coding.vvc.VVCError if a key frame cannot be decoded.
        """
        source = self.open(data)
        stream = source.stream
        first = stream.segment_at(start_frame)
        chain = [source.segment(i).key_frame for i in range(stream.chain_start(first), first)]
        segment = source.segment(first)
        _check_segment_size(stream, segment)
        chain, key_frame = self._decode_key_frame(stream, segment, chain)
        return self._frames(source, stream, first, (segment, key_frame, chain), start_frame)

    def _frames(self, source, stream, first, opened, start_frame):
        for i in range(first, len(stream.segments)):
            if i == first:
                segment, key_frame, chain = opened
            else:
                segment = source.segment(i)
                _check_segment_size(stream, segment)
                chain, key_frame = self._decode_key_frame(stream, segment, chain)
            yield from self._segment_frames(stream, segment, key_frame, max(0, start_frame - segment.start_frame))

    def _decode_key_frame(self, stream, segment, chain):
        """Decode a segment's key frame: (its chain's key-frame sections so far, decoded uint8 (H, W, 3)). ``chain``:
        the sections of the key frames before it in its chain (used only if it is predicted)."""
        sections = chain + [segment.key_frame] if segment.predicted else [segment.key_frame]
        try:
            key = vvc_lib.decode(b''.join(sections), stream.width, stream.height, backend=stream.key_codec,
                                 vtm=self.vtm, max_frames=len(sections))
        except vvc_lib.VVCContentError as err:
            raise bitstream.BitstreamError(f'key frame of the segment at frame {segment.start_frame}: {err}') from None
        if len(key) != len(sections):
            raise bitstream.BitstreamError(f'the key-frame sections up to frame {segment.start_frame} hold {len(key)} '
                                           f'pictures, expected {len(sections)}')
        return sections, key[-1]

    @torch.inference_mode()
    def _segment_frames(self, stream, segment, key_frame, skip):
        """Frames of one segment from its ``skip``-th on (keypoints before it are decoded, not rendered)."""
        device = self.models.device
        keypoints = (torch.from_numpy(keypoint_coder.dequantize(q, stream.kp_step))[None].to(device)
                     for q in _keypoint_frames(stream, segment))
        kp_source = next(keypoints)             # the segment's first keypoints: from its decoded key frame
        if skip:
            for _ in range(skip - 1):
                next(keypoints)
        else:
            keypoints = _prepend(kp_source, keypoints)
        rendered = render_keypoints(self.models.generator, frames_to_tensor(key_frame[None], device), kp_source,
                                    keypoints)
        for index, (_, out) in enumerate(rendered, start=skip):
            vertices = self.models.vertex_head(out['F_refine'])[0].float().cpu().numpy()
            frame = key_frame if index == 0 else tensor_to_frames(out['prediction'])[0].numpy()
            yield frame, vertices


def _prepend(first, rest):
    yield first
    yield from rest


def _check_segment_size(stream, segment):
    """BitstreamError if the segment's keypoint payload cannot hold the frames its index entry claims."""
    limit = keypoint_coder.get_coder(stream.kp_coder).max_frames(len(segment.keypoints), stream.num_kp)
    if segment.frame_count > limit:
        raise bitstream.BitstreamError(
            f'the segment at frame {segment.start_frame} announces {segment.frame_count} frames but its '
            f'{len(segment.keypoints)}-byte keypoint section can hold at most {limit}: truncated or corrupt file')


def _keypoint_frames(stream, segment):
    """Yield the quantized keypoints (K, 3) of each frame of a segment; BitstreamError if corrupt, if the keypoint
    data ends before the segment's frame count, or if a keypoint leaves [-1, 1] (beyond the rounding of
    quantization: |q| <= round(1 / kp_step))."""
    decoder = keypoint_coder.get_coder(stream.kp_coder).decoder(segment.keypoints, stream.num_kp, stream.kp_step)
    max_q = keypoint_coder.max_abs_quantized(stream.kp_step)
    for index in range(segment.start_frame, segment.start_frame + segment.frame_count):
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
    Returns: (iterable of uint8 (size, size, 3) frames that reads the video again each time it is iterated (the
        crop box is found once), frame count or None if unknown, fps as a Fraction).
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

    return _CroppedVideo(path, indices, box, size), count, out_fps


class _CroppedVideo:
    """The frames of :func:`read_video`: each iteration reads the video again, one frame at a time."""

    def __init__(self, path, indices, box, size):
        self.path, self.indices, self.box, self.size = path, indices, box, size

    def __iter__(self):
        from tools.crop import apply_crop
        from video_io import iter_frames
        for _, frame in iter_frames(self.path, self.indices()):
            yield apply_crop(frame, self.box, self.size)
