"""``codec.py demo``: the main job on a real clip, end to end, with the embedded VVC.

Encodes a clip (default: the bundled ``data/samples/head04.mp4``, a test-split clip the shipped model never saw)
with the shipped checkpoint, decodes it, and compares it with two references at the same resolution:

- the **VVC anchor**: the whole clip in low-delay mode (:func:`coding.vvc.encode_sequence`) at the QP whose rate is
  closest to the ``.s2d`` file's;
- the **frozen key frame**: the decoded key-reference frame repeated (the rate of the key frame alone): a codec that
  transmits no motion at all.

Outputs in ``OUT`` (default ``out/demo``), each written atomically: ``demo.s2d``, ``decoded.mp4`` (lossless),
``side_by_side.mp4`` (original | decoded | VVC anchor), ``vertices.mp4`` (predicted vertices over the decoded frames),
``vertices.npz``, ``keypoints.png`` (decoded keypoint trajectories) and ``report.json``.
"""
import json
import os
import platform
import time

import cv2
import matplotlib
import numpy as np

from coding import vvc as vvc_lib
from coding.bitstream import write_atomic
from coding.codec import Decoder, Encoder, read_video
from modules.util import to_pixels
from video_io import atomic_path, write_video

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

DEMO_METRICS = ('psnr', 'ms_ssim', 'vmaf', 'motion')
#: anchor QPs tried first (VVenC nominal QP), then refined by +-1 around the closest rate
ANCHOR_QP_GRID = (62, 57, 52, 47, 42, 37, 32)
DISPLAY_SIZE = 256


def _anchor_at_rate(frames, fps, target_bits, backend):
    """Low-delay VVC of ``frames`` at the QP whose size is closest to ``target_bits``.

    Returns: (VVCResult, list of (qp, bits) tried).
    """
    tried = {}

    def code(qp):
        if qp not in tried and 0 <= qp <= 63:
            tried[qp] = vvc_lib.encode_sequence(frames, qp, fps, backend=backend)
        return tried.get(qp)

    for qp in ANCHOR_QP_GRID:
        code(qp)
        if tried[qp].bits > target_bits:
            break
    best = min(tried, key=lambda q: abs(tried[q].bits - target_bits))
    for qp in (best - 2, best - 1, best + 1, best + 2):
        code(qp)
    best = min(tried, key=lambda q: abs(tried[q].bits - target_bits))
    return tried[best], sorted((q, r.bits) for q, r in tried.items())


def _label(frame, text):
    """Frame enlarged to DISPLAY_SIZE (bicubic, display only) with a caption (uint8 (S, S, 3))."""
    big = cv2.resize(frame, (DISPLAY_SIZE, DISPLAY_SIZE), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(big, (0, 0), (DISPLAY_SIZE, 22), (0, 0, 0), -1)
    cv2.putText(big, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return big


def plot_keypoints(keypoints, key_frame, path):
    """Keypoint trajectories: x, y, depth against the frame index, and the x-y paths over the key frame.

    Args:
        keypoints: (T, K, 3) decoded keypoints in [-1, 1]. key_frame: uint8 (H, W, 3). path: PNG file.
    """
    t, k, _ = keypoints.shape
    colours = plt.cm.gist_rainbow(np.linspace(0, 1, k))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for axis, name in enumerate(('x', 'y', 'depth')):
        for i in range(k):
            axes[axis].plot(keypoints[:, i, axis], color=colours[i], lw=1)
        axes[axis].set(title=f'keypoint {name}', xlabel='frame', ylim=(-1, 1))
    paths = to_pixels(keypoints[..., :2], *key_frame.shape[:2])
    axes[3].imshow(key_frame)
    for i in range(k):
        axes[3].plot(paths[:, i, 0], paths[:, i, 1], color=colours[i], lw=1.5)
    axes[3].set(title='x-y paths over the key frame', xticks=[], yticks=[])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format='png')
    plt.close(fig)


def _inter_frame_bits(account):
    """Mean keypoint bits of the frames that are not key frames (None if there are none)."""
    keys = set(account.key_frames)
    inter = [bits for frame, bits in enumerate(account.keypoint_bits) if frame not in keys]
    return float(np.mean(inter)) if inter else None


def run_demo(checkpoint, input_path, out_dir, qp=None, max_frames=None, device='cpu', crop='person'):
    """Encode + decode one clip, compare with the VVC anchor and the frozen key frame, write every output.

    Args:
        checkpoint: inference or training checkpoint (``*.pth``).
        input_path: any video PyAV reads (person-centred crop to the model size, as the data tool).
        out_dir: output folder (created).
        qp: key-frame QP (VVenC nominal); None: the checkpoint's ``codec_params.qp``.
        max_frames: code at most this many frames (None: all).
        device: torch device.
        crop: 'person', 'center' or 'none' (see :func:`coding.codec.read_video`).
    Returns:
        the report dict (also written to ``report.json``): rates in kbps and bits/frame, PSNR (dB), MS-SSIM,
        VMAF per codec, its motion fidelity (``results[codec]['motion']``, evaluation/motion.py: landmark errors,
        mouth / yaw / pitch correlations, frames without a face; None where mediapipe is missing), encode/decode
        speed in frames/s.
    Raises:
        the errors of :class:`coding.codec.Encoder` / :func:`coding.codec.read_video` (bad checkpoint, unreadable
        video, no person) and :class:`coding.vvc.VVCError`.
    """
    from evaluation.metrics import MetricSuite
    from evaluation.vertices import write_overlay

    os.makedirs(out_dir, exist_ok=True)
    encoder = Encoder(checkpoint, device=device, qp=qp)
    frame_iter, _, fps = read_video(input_path, encoder.size[0], crop=crop, max_frames=max_frames)
    frames = np.stack(list(frame_iter))
    start = time.perf_counter()
    data = encoder.encode(frames, fps=fps)
    encode_seconds = time.perf_counter() - start
    write_atomic(os.path.join(out_dir, 'demo.s2d'), data)
    account = encoder.account

    decoder = Decoder(checkpoint, device=device)
    start = time.perf_counter()
    decoded, vertices = [], []
    for frame, verts in decoder.decode(data):
        decoded.append(frame)
        vertices.append(verts)
    decode_seconds = time.perf_counter() - start
    decoded, vertices = np.stack(decoded), np.stack(vertices)

    anchor, anchor_tried = _anchor_at_rate(frames, fps, account.total_bits, encoder.vvc)
    frozen = np.repeat(encoder.key_frame[None], len(frames), axis=0)
    suite = MetricSuite(DEMO_METRICS, device=device)
    seconds = len(frames) / float(fps)
    codecs = {
        'sparse2dense': (decoded, account.total_bits),
        f'vvc_anchor_{anchor.backend}': (anchor.frames, anchor.bits),
        'frozen_key_frame': (frozen, account.key_frame_bits[0] + account.header_bits),
    }
    landmarks = suite.motion_landmarks(frames)              # the teacher on the original, once
    results = {}
    for name, (video, bits) in codecs.items():
        results[name] = {'bits': int(bits), 'kbps': bits / seconds / 1000, 'bits_per_frame': bits / len(frames),
                         **suite.sequence(frames, video, fps=float(fps)),
                         'motion': suite.motion(frames, video, float(fps), landmarks)}
    results[f'vvc_anchor_{anchor.backend}']['qp'] = anchor.qp

    write_video(os.path.join(out_dir, 'decoded.mp4'), decoded, fps)
    anchor_name = f'VVC {anchor.backend} QP{anchor.qp}'
    side = (np.concatenate([_label(o, 'original'), _label(d, 'Sparse2Dense'), _label(a, anchor_name)], axis=1)
            for o, d, a in zip(frames, decoded, anchor.frames))
    write_video(os.path.join(out_dir, 'side_by_side.mp4'), side, fps, crf=10)
    write_overlay(os.path.join(out_dir, 'vertices.mp4'), decoded, vertices, None, None, fps)
    with atomic_path(os.path.join(out_dir, 'vertices.npz')) as tmp, open(tmp, 'wb') as handle:
        np.savez(handle, vertices=vertices.astype(np.float32))
    _, decoded_keypoints = decoder.decode_keypoints(data)       # read back from the bitstream, as the decoder sees them
    plot_keypoints(decoded_keypoints, encoder.key_frame, os.path.join(out_dir, 'keypoints.png'))

    report = {
        'input': os.path.abspath(input_path), 'frames': len(frames), 'fps': float(fps),
        'size': list(encoder.size), 'checkpoint': os.path.abspath(checkpoint),
        'weights_id': encoder.models.weights_id.hex(), 'key_frame_encoder': encoder.vvc,
        'key_frame_qp': encoder.qp, 'kp_step': encoder.kp_step,
        'key_frames': account.key_frames,
        'bits_split': {'header': account.header_bits, 'key_frames': sum(account.key_frame_bits),
                       'keypoints': float(sum(account.keypoint_bits) + sum(account.keypoint_overhead_bits)),
                       'index': account.index_bits},
        'keypoint_bits_per_inter_frame': _inter_frame_bits(account),
        'results': results, 'anchor_qps_tried': anchor_tried,
        'encode_fps': len(frames) / encode_seconds, 'decode_fps': len(frames) / decode_seconds,
        'metrics_protocol': 'per frame on RGB at the model size, mean over the clip (VMAF: libvmaf vmaf_v0.6.1 '
                            'pooled mean); VVenC QPs are nominal (not VTM QPs); motion: MediaPipe Holistic on the '
                            'original and the decoded frames at the model size (evaluation/motion.py): face error in '
                            'px and per inter-ocular distance, PCK at 0.1 of it, Pearson correlation over time of '
                            'the mouth opening, head yaw and pitch (0 for a constant decoded series)',
        'machine': f'{platform.node()} {platform.machine()}, {os.cpu_count()} cores', 'date': time.strftime('%Y-%m-%d %H:%M'),
    }
    with atomic_path(os.path.join(out_dir, 'report.json')) as tmp, open(tmp, 'w') as handle:
        json.dump(report, handle, indent=2)
    return report


def _num(value, width, digits):
    return f'{value:{width}.{digits}f}' if value is not None else f"{'n/a':>{width}s}"


def format_report(report):
    """The demo's console summary (str): one line per codec with rate and quality, then speed."""
    lines = [f"{report['frames']} frames {report['size'][1]}x{report['size'][0]} at {report['fps']:g} fps; key frame "
             f"{report['key_frame_encoder']} QP {report['key_frame_qp']}, kp_step {report['kp_step']:g}; keypoints "
             f"{report['keypoint_bits_per_inter_frame']:.1f} bits per inter frame",
             f"{'codec':24s} {'kbps':>8s} {'bits/frame':>10s} {'PSNR dB':>8s} {'MS-SSIM':>8s} {'VMAF':>6s}"]
    for name, r in report['results'].items():
        label = name + (f" (QP {r['qp']})" if 'qp' in r else '')
        lines.append(f"{label:24s} {r['kbps']:8.2f} {r['bits_per_frame']:10.1f} {r['psnr']:8.2f} "
                     f"{r['ms_ssim']:8.4f} {r['vmaf']:6.2f}")
    motion = {name: r['motion'] for name, r in report['results'].items() if r.get('motion')}
    if motion:
        lines.append('motion fidelity (MediaPipe Holistic, original vs decoded; correlations over time, 1 = follows):')
        lines.append(f"{'codec':24s} {'face px':>8s} {'face/IOD':>8s} {'PCK':>6s} {'mouth r':>8s} {'yaw r':>6s} "
                     f"{'pitch r':>7s} {'no face orig/dec':>16s}")
        for name, m in motion.items():
            lines.append(f"{name:24s} {_num(m['face_error_px'], 8, 2)} {_num(m['face_error_norm'], 8, 3)} "
                         f"{_num(m['face_pck'], 6, 3)} {_num(m['mouth_corr'], 8, 2)} {_num(m['yaw_corr'], 6, 2)} "
                         f"{_num(m['pitch_corr'], 7, 2)} "
                         f"{str(m['frames_no_face_original']) + '/' + str(m['frames_no_face_decoded']):>16s}")
    lines.append(f"encode {report['encode_fps']:.2f} frames/s, decode {report['decode_fps']:.2f} frames/s "
                 f"({report['machine']})")
    return '\n'.join(lines)
