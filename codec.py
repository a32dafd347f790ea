"""Sparse2Dense codec command line.

    python codec.py encode --checkpoint CKPT --input VIDEO --output OUT.s2d [--qp 42] [--kp-step S]
                           [--refresh-threshold DB] [--no-scene-cuts] [--target-kbps R] [--account CSV]
                           [--kp-coder NAME] [--refine-steps N] [--frames N] [--fps F] [--vvc vvenc|vtm]
                           [--no-crop] [--device cpu] [--allow-truncated] [--vtm-encoder APP] [--vtm-decoder APP]
                           [--vtm-cfg-dir DIR]
    python codec.py decode --input OUT.s2d --checkpoint CKPT --output RECON.mp4 [--start-frame N]
                           [--vertices V.npz] [--png-dir DIR] [--device cpu] [--vtm-decoder APP]
    python codec.py demo [--input VIDEO] [--qp QP] [--out out/demo] [--checkpoint CKPT] [--frames N]

encode: reads any video PyAV reads, brings it to the model's square size with the data tool's
person-centred crop (tools/crop.py; ``--no-crop`` requires the exact size instead), codes the first
frame and every refreshed key-reference frame (scene cuts; ``--refresh-threshold``: quality drop of the frame as
decoded, see coding/codec.py) with VVC and every frame's keypoints, writes the ``.s2d`` file atomically and prints
the total bits, kbps at the clip's frame rate, bits per frame, the split header / key frames / keypoints / index,
every key frame and the bits of every frame (``--account`` writes them as CSV). ``--target-kbps`` runs the rate
control of coding/rate_control.py. ``--refine-steps N`` refines every frame's keypoints at the encoder
(coding/refine.py: towards the keypoints whose rendering is closest to the original; the decoder is unchanged).
``--fps`` resamples the clip in time first (never above its own rate), as the data tool does. A tqdm bar shows the
frames coded and the current rate.

decode: renders the frames one at a time and writes each as soon as it is made (losslessly,
H.264 RGB ``qp 0``), optional PNGs, and the body vertices (T, N, 2) as an ``.npz`` (key
'vertices', normalized image coordinates in [-1, 1]). ``--start-frame N`` seeks with the file's index.

Exit codes: 0 done; 1 a missing or bad input file (bitstream, video; a missing checkpoint) or a failed coding step;
2 a bad command line: option value, device, output path (a folder, an unwritable folder, the input itself,
--vertices = --output, a non-empty --png-dir) or an unreadable / refused checkpoint. Every error is one line. Nothing is deleted: outputs replace only the named files,
atomically. VTM executables come only from the environment or these options, never from the checkpoint.

demo: the main job on a bundled real clip with the shipped checkpoint and the embedded VVC: encode, decode,
compare with the VVC anchor at a similar rate and with the frozen key frame; writes the bitstream, decoded,
side-by-side and vertex-overlay videos, a keypoint plot and ``report.json`` (see tools/demo.py).
"""
import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile

import numpy as np
from tqdm import tqdm

from coding.bitstream import BitstreamError, write_atomic
from coding.keypoint_coder import CODERS as KP_CODERS, DEFAULT_CODER as DEFAULT_KP_CODER
from coding.vvc import BACKENDS as VVC_BACKENDS

REPO = os.path.dirname(os.path.abspath(__file__))


class UsageError(ValueError):
    """A bad command line (option value, output path, device): reported in one line, exit code 2."""


def _vtm_tools(args):
    """VTM executables named on the command line (unset ones fall back to VTM_ENCODER / VTM_DECODER / VTM_CFG_DIR)."""
    from coding.vvc import VTMTools
    return VTMTools(encoder=getattr(args, 'vtm_encoder', None), decoder=getattr(args, 'vtm_decoder', None),
                    cfg_dir=getattr(args, 'vtm_cfg_dir', None))


def _add_vtm_options(parser, encoder):
    if encoder:
        parser.add_argument('--vtm-encoder', default=None, help='VTM EncoderApp (default: $VTM_ENCODER)')
        parser.add_argument('--vtm-cfg-dir', default=None,
                            help='VTM cfg/ folder with encoder_intra_vtm.cfg (default: $VTM_CFG_DIR)')
    parser.add_argument('--vtm-decoder', default=None, help='VTM DecoderApp (default: $VTM_DECODER)')


def _same_file(a, b):
    """True if paths a and b name the same file (existing: same inode; else the same resolved path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path, folder):
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _check_writable_target(path, option):
    """Refuse an output path that is a folder, or whose folder cannot be created or written (before any work)."""
    if os.path.isdir(path):
        raise UsageError(f'{option} {path} is a directory; give a file name')
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f'{option} {path}: {existing} is not a folder')
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UsageError(f'{option} {path}: cannot write in folder {existing} ({err.strerror or err})') from None


def _check_device(name):
    """Refuse a torch device this machine does not have, with one line instead of a CUDA traceback."""
    import torch
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as err:
        raise UsageError(f'--device {name!r} is not a torch device ({err}); use e.g. cpu or cuda:0') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UsageError(f'--device {name}: CUDA is not available on this machine; use --device cpu')
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f'--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})')
    elif device.type != 'cpu':
        try:
            torch.empty(1, device=device)
        except Exception as err:  # backends raise various types for a missing device
            raise UsageError(f'--device {name} is not usable here ({str(err).splitlines()[0][:120]})') from None


def _check_encode_args(args):
    if args.fps is not None:
        if not math.isfinite(args.fps) or not 0.01 <= args.fps <= 1000:
            raise UsageError(f'--fps must be a finite frame rate in [0.01, 1000] frames/s, got {args.fps}')
    if args.frames is not None and args.frames <= 0:
        raise UsageError(f'--frames must be positive, got {args.frames}')
    if args.target_kbps is not None and not (math.isfinite(args.target_kbps) and args.target_kbps > 0):
        raise UsageError(f'--target-kbps must be a positive rate in kbit/s, got {args.target_kbps}')
    if args.refresh_threshold is not None and not args.refresh_threshold >= 0:
        raise UsageError(f'--refresh-threshold must be >= 0 dB, got {args.refresh_threshold}')
    if args.refine_steps is not None and args.refine_steps < 0:
        raise UsageError(f'--refine-steps must be >= 0 (0: the detector\'s keypoints), got {args.refine_steps}')
    if args.account:
        if _same_file(args.account, args.input) or _same_file(args.account, args.output):
            raise UsageError(f'--account {args.account} names the input or the output; give another file')
        _check_writable_target(args.account, '--account')
    if not os.path.isfile(args.input) and os.path.exists(args.input):
        raise UsageError(f'--input {args.input} is not a regular file')
    if _same_file(args.output, args.input):
        raise UsageError(f'--output {args.output} is the input video: it would be overwritten; give another name')
    _check_writable_target(args.output, '--output')
    _check_device(args.device)


def _check_decode_args(args):
    outputs = [('--output', args.output)] + ([('--vertices', args.vertices)] if args.vertices else [])
    for option, path in outputs:
        if _same_file(path, args.input):
            raise UsageError(f'{option} {path} is the input bitstream: it would be overwritten; give another name')
    if args.vertices and _same_file(args.vertices, args.output):
        raise UsageError(f'--vertices {args.vertices} is also --output: one would overwrite the other')
    for option, path in outputs:
        _check_writable_target(path, option)
    if args.png_dir:
        for option, path in outputs + [('--input', args.input)]:
            if _inside(path, args.png_dir):
                raise UsageError(f'{option} {path} is inside --png-dir {args.png_dir}; keep them apart')
        if os.path.lexists(args.png_dir):
            if not os.path.isdir(args.png_dir) or os.path.islink(args.png_dir):
                raise UsageError(f'--png-dir {args.png_dir} exists and is not a folder')
            if os.listdir(args.png_dir):
                raise UsageError(f'--png-dir {args.png_dir} is not empty: give a new or empty folder '
                                 f'(nothing in an existing folder is ever deleted)')
        _check_writable_target(os.path.join(args.png_dir, 'x.png'), '--png-dir')
    _check_device(args.device)


def encode(args):
    """``codec.py encode``: video -> .s2d; prints the rate and the bit account (every key frame, every frame)."""
    from coding.codec import Encoder, read_video
    from coding.rate_control import encode_at_rate
    _check_encode_args(args)
    encoder = Encoder(args.checkpoint, device=args.device, kp_step=args.kp_step, qp=args.qp, vvc=args.vvc,
                      vtm=_vtm_tools(args), refresh_threshold=args.refresh_threshold,
                      scene_cuts=not args.no_scene_cuts, kp_coder=args.kp_coder,
                      inter_key_frames=args.inter_key_frames, refine_steps=args.refine_steps)
    if encoder.size[0] != encoder.size[1]:
        raise ValueError(f'the model frame size {encoder.size} is not square')
    frames, count, fps = read_video(args.input, encoder.size[0], crop='none' if args.no_crop else 'person',
                                    max_frames=args.frames, fps=args.fps)
    if args.target_kbps is None:
        with tqdm(total=count, unit='frame', desc='encode') as bar:
            def update(n):
                bar.update(n)
                bar.set_postfix_str(f'{encoder.running_kbps:.2f} kbps')
            data = encoder.encode(frames, fps=fps, progress=update)
    else:
        with tqdm(unit='pass', desc=f'rate control to {args.target_kbps:g} kbps') as bar:
            def trial_done(trial):
                bar.update(1)
                bar.set_postfix_str(f'QP {trial.qp} refresh {trial.threshold:g} dB: {trial.kbps:.2f} kbps')
            result = encode_at_rate(encoder, frames, fps, args.target_kbps, on_trial=trial_done)
        data = result.data
    acc = encoder.account
    if count is not None and acc.frame_count < count:
        message = (f'{args.input}: only {acc.frame_count} of the {count} frames its container announces could be '
                   f'read (truncated or damaged file?)')
        if not args.allow_truncated:
            raise TruncatedInputError(message + '; nothing written. Pass --allow-truncated to code what was read')
        print(f'warning: {message}; coding {acc.frame_count} frames (--allow-truncated)', file=sys.stderr)
    write_atomic(args.output, data)
    if args.account:
        _write_account(args.account, encoder)
    refresh = 'off' if encoder.refresh_threshold is None else f'{encoder.refresh_threshold:g} dB'
    print(f'{args.output}: {acc.frame_count} frames at {float(fps):g} fps, {len(acc.key_frames)} key frame(s) '
          f'({sum(acc.predicted)} predicted) '
          f'{encoder.vvc} QP {encoder.qp}, refresh threshold {refresh}, scene cuts '
          f'{"on" if encoder.scene_cuts else "off"}, kp_step {encoder.kp_step:g}, keypoint coder {encoder.coder.name}')
    if args.target_kbps is not None:
        verdict = 'within' if result.within_tolerance else 'NOT within'
        print(f'rate control: target {args.target_kbps:g} kbps, achieved {acc.kbps:.3f} kbps '
              f'({100 * (acc.kbps / args.target_kbps - 1):+.1f} %, {verdict} +-10 %) after {len(result.trials)} passes')
    print(f'total {acc.total_bits} bits = {acc.kbps:.3f} kbps, {acc.bits_per_frame:.1f} bits/frame')
    print(format_account(acc, encoder.psnr, per_frame=acc.frame_count <= MAX_PRINTED_FRAMES))
    if acc.frame_count > MAX_PRINTED_FRAMES:
        print(f'  (per-frame bits of all {acc.frame_count} frames: --account FILE.csv)')


MAX_PRINTED_FRAMES = 600


def format_account(acc, psnr=None, per_frame=True):
    """The bit account as text: the split header / key frames / keypoints / index, one line per key frame, and
    (per_frame) the bits of every frame, 10 per line, key frames marked with '*'.

    Args: acc: coding.codec.BitAccount; psnr: optional (T,) encoder-side PSNR in dB (NaN: not rendered).
    """
    lines = []
    keypoints = sum(acc.keypoint_bits) + sum(acc.keypoint_overhead_bits)
    for name, bits in (('header', acc.header_bits), ('key frames', sum(acc.key_frame_bits)),
                       ('keypoints', keypoints), ('index', acc.index_bits)):
        lines.append(f'  {name:10s} {bits:10.0f} bits ({100 * bits / acc.total_bits:5.1f} %)')
    inter = [b for i, b in enumerate(acc.keypoint_bits) if i not in set(acc.key_frames)]
    if inter:
        lines.append(f'  keypoints per inter frame: {np.mean(inter):.1f} bits')
    for frame, bits, predicted in zip(acc.key_frames, acc.key_frame_bits, acc.predicted):
        quality = f', key frame PSNR {psnr[frame]:.2f} dB' if psnr is not None and np.isfinite(psnr[frame]) else ''
        lines.append(f'  key frame at {frame:6d}: {bits} bits ({"P, predicted" if predicted else "intra"}){quality}')
    if per_frame:
        keys = set(acc.key_frames)
        bits = acc.per_frame()
        lines.append('  bits per frame (* key frame):')
        for start in range(0, len(bits), 10):
            cells = [f'{b:8.0f}{"*" if start + i in keys else " "}' for i, b in enumerate(bits[start:start + 10])]
            lines.append(f'  {start:6d}: ' + ' '.join(cells))
    return '\n'.join(lines)


def _write_account(path, encoder):
    """Per-frame CSV: frame, key (0/1), bits charged to it, keypoint bits, encoder-side PSNR (dB, empty if not
    rendered); written atomically."""
    acc = encoder.account
    keys = set(acc.key_frames)
    rows = ['frame,key,bits,keypoint_bits,psnr_db']
    for frame, (bits, kp_bits, psnr) in enumerate(zip(acc.per_frame(), acc.keypoint_bits, encoder.psnr)):
        rows.append(f'{frame},{int(frame in keys)},{bits:.1f},{kp_bits:.1f},{"" if np.isnan(psnr) else f"{psnr:.3f}"}')
    write_atomic(path, ('\n'.join(rows) + '\n').encode())


class TruncatedInputError(ValueError):
    """The input video ended before the frame count its container announces."""


@contextlib.contextmanager
def _new_folder(path):
    """A temporary sibling folder (str) to fill; on success it becomes ``path`` (which may only be an empty folder or
    absent: an existing folder is removed with os.rmdir, which never deletes files). Removed on error.
    Written through :func:`video_io.atomic_path`."""
    from video_io import atomic_path
    with atomic_path(path, replace_folder=False) as tmp:
        tmp.mkdir()
        yield str(tmp)


class _VertexSink:
    """Streams (N, 2) vertex frames to an anonymous temporary file; :meth:`save` writes the .npz atomically.

    Memory stays constant whatever the frame count (the vertices are never all held at once).
    """

    def __init__(self):
        self.raw = tempfile.TemporaryFile()
        self.shape = None
        self.count = 0

    def add(self, vertices):
        vertices = np.ascontiguousarray(vertices, dtype='<f4')
        if self.shape is None:
            self.shape = vertices.shape
        elif vertices.shape != self.shape:
            raise ValueError(f'vertex frame {self.count} has shape {vertices.shape}, expected {self.shape}')
        self.raw.write(vertices.tobytes())
        self.count += 1

    def save(self, path):
        """Write ``vertices`` (T, N, 2) float32 as an .npz (np.load reads it), atomically."""
        import zipfile
        shape = (self.count,) + (self.shape or (0, 2))
        self.raw.seek(0)
        from video_io import atomic_path
        with atomic_path(path) as tmp, open(tmp, 'wb') as handle, \
                zipfile.ZipFile(handle, 'w', allowZip64=True) as archive:
            with archive.open('vertices.npy', 'w', force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, {'descr': '<f4', 'fortran_order': False, 'shape': shape})
                shutil.copyfileobj(self.raw, member, 1 << 20)

    def close(self):
        self.raw.close()


def decode(args):
    """``codec.py decode``: .s2d -> video (+ PNGs, vertices), streaming in constant memory; with --start-frame N
    from frame N on, reading and decoding from the key frame at or before N only."""
    from coding.bitstream import S2DFile
    from coding.codec import Decoder
    from video_io import write_video
    from PIL import Image

    _check_decode_args(args)
    decoder = Decoder(args.checkpoint, device=args.device, vtm=_vtm_tools(args))
    sink = _VertexSink() if args.vertices else None     # without --vertices the vertices are dropped
    count = 0
    try:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(S2DFile(args.input))
            stream = source.stream
            if not 0 <= args.start_frame < stream.frame_count:
                raise UsageError(f'--start-frame {args.start_frame} is outside the clip\'s {stream.frame_count} '
                                 f'frames (0..{stream.frame_count - 1})')
            frames = decoder.decode(source, start_frame=args.start_frame)
            png_dir = stack.enter_context(_new_folder(args.png_dir)) if args.png_dir else None

            def written():
                nonlocal count
                for index, (frame, verts) in enumerate(tqdm(frames, total=stream.frame_count - args.start_frame,
                                                            unit='frame', desc='decode'), start=args.start_frame):
                    if sink is not None:
                        sink.add(verts)
                    if png_dir is not None:
                        Image.fromarray(frame).save(os.path.join(png_dir, f'{index:07d}.png'))
                    count += 1
                    yield frame

            write_video(args.output, written(), stream.fps)
            if sink is not None:
                sink.save(args.vertices)
    finally:
        if sink is not None:
            sink.close()
    start = f' (frames {args.start_frame}..{args.start_frame + count - 1})' if args.start_frame else ''
    print(f'{args.output}: {count} frames{start} at {float(stream.fps):g} fps'
          + (f'; vertices ({count}, {sink.shape[0]}, 2) -> {args.vertices}' if sink is not None and sink.shape else '')
          + (f'; PNGs in {args.png_dir}' if args.png_dir else ''))


def demo(args):
    """``codec.py demo``: encode + decode a real clip, compare, print the numbers (tools/demo.py)."""
    from tools.demo import format_report, run_demo
    report = run_demo(args.checkpoint, args.input, args.out, qp=args.qp, max_frames=args.frames,
                      device=args.device)
    print(format_report(report))
    print(f'outputs in {args.out}: demo.s2d, decoded.mp4, side_by_side.mp4, vertices.mp4, vertices.npz, '
          f'keypoints.png, report.json')


def build_parser():
    """The argument parser with the encode and decode subcommands."""
    parser = argparse.ArgumentParser(description='Sparse2Dense human video codec')
    sub = parser.add_subparsers(dest='command', required=True)
    enc = sub.add_parser('encode', help='video -> .s2d bitstream')
    enc.add_argument('--checkpoint', required=True, help='model checkpoint (*.pth)')
    enc.add_argument('--input', required=True, help='input video (any format PyAV reads)')
    enc.add_argument('--output', required=True, help='output .s2d file')
    enc.add_argument('--qp', type=int, default=None, help='key-frame VVC QP (default: config codec_params.qp or 42)')
    enc.add_argument('--kp-step', type=float, default=None,
                     help='keypoint quantization step (default: config codec_params.kp_step)')
    enc.add_argument('--frames', type=int, default=None, help='code at most N frames')
    enc.add_argument('--fps', type=float, default=None, help='resample the clip to this frame rate first')
    enc.add_argument('--vvc', choices=VVC_BACKENDS, default=None,
                     help='key-frame encoder (default: config codec_params.vvc or vvenc)')
    enc.add_argument('--refresh-threshold', type=float, default=None, metavar='DB',
                     help='new key frame when a frame as decoded is more than DB dB (RGB PSNR) below the best frame '
                          'decoded from the same key frame so far (default: off; renders while encoding)')
    enc.add_argument('--no-scene-cuts', action='store_true', help='no new key frame at detected scene cuts')
    enc.add_argument('--inter-key-frames', action=argparse.BooleanOptionalAction, default=None,
                     help='code key frames refreshed for quality as VVC P pictures predicted from the earlier key '
                          'frames (default: on with vvenc, off with vtm, which has no prefix-stable mode)')
    enc.add_argument('--target-kbps', type=float, default=None, metavar='R',
                     help='rate control: choose the key-frame QP and refresh threshold to land within +-10%% of R '
                          'kbit/s (several passes; --qp and --refresh-threshold are then chosen, not used)')
    enc.add_argument('--refine-steps', type=int, default=None, metavar='N',
                     help='encoder-side keypoint refinement: N descent steps per frame towards the keypoints whose '
                          'rendering is closest to the original (slower encoding, same decoder; default: config '
                          'codec_params.refine_steps, else coding.codec.DEFAULT_REFINE_STEPS; 0: the detector\'s '
                          'keypoints)')
    enc.add_argument('--kp-coder', choices=sorted(KP_CODERS), default=None,
                     help=f'keypoint entropy coder (default {DEFAULT_KP_CODER})')
    enc.add_argument('--account', default=None, metavar='CSV', help='write the per-frame bit account to this CSV')
    enc.add_argument('--no-crop', action='store_true', help='no person crop: input must be the model size')
    enc.add_argument('--allow-truncated', action='store_true',
                     help='code the frames that could be read when the input ends early (default: fail)')
    enc.add_argument('--device', default='cpu', help="torch device, e.g. cpu or cuda:0")
    _add_vtm_options(enc, encoder=True)
    enc.set_defaults(func=encode)
    dec = sub.add_parser('decode', help='.s2d bitstream -> video, vertices')
    dec.add_argument('--input', required=True, help='.s2d file')
    dec.add_argument('--checkpoint', required=True, help='the checkpoint used for encoding')
    dec.add_argument('--output', required=True, help='reconstructed video (.mp4, lossless H.264 RGB)')
    dec.add_argument('--vertices', default=None, help='write vertices (T, N, 2) to this .npz')
    dec.add_argument('--png-dir', default=None, help='also write every frame as PNG into this folder')
    dec.add_argument('--start-frame', type=int, default=0, metavar='N',
                     help='output frames N.. only, decoding from the key frame at or before N (default 0)')
    dec.add_argument('--device', default='cpu', help="torch device, e.g. cpu or cuda:0")
    _add_vtm_options(dec, encoder=False)
    dec.set_defaults(func=decode)
    dem = sub.add_parser('demo', help='encode + decode a bundled real clip and compare with VVC')
    dem.add_argument('--input', default=os.path.join(REPO, 'data', 'samples', 'head04.mp4'),
                     help='input video (default: the bundled data/samples/head04.mp4)')
    dem.add_argument('--checkpoint', default=os.path.join(REPO, 'checkpoints', 'humans256-cpu.pth'),
                     help='model checkpoint (default: the shipped checkpoints/humans256-cpu.pth)')
    dem.add_argument('--qp', type=int, default=None, help='key-frame VVC QP (default: config codec_params.qp)')
    dem.add_argument('--frames', type=int, default=None, help='code at most N frames')
    dem.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    dem.add_argument('--device', default='cpu', help="torch device, e.g. cpu or cuda:0")
    dem.set_defaults(func=demo)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (errors are printed in one line, not raised): 2 for a bad
    command line, output path, device or an unreadable checkpoint; 1 for a missing or bad input file (or a missing
    checkpoint) or a failed coding step."""
    from coding.vvc import VVCError
    from modules.build import CheckpointError
    from tools.crop import NoPersonError
    from video_io import VideoReadError

    args = build_parser().parse_args(argv)
    for name in ('frames', 'fps'):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            print(f'error: --{name} must be positive, got {value}', file=sys.stderr)
            return 2
    try:
        args.func(args)
    except FileNotFoundError as err:        # a missing input or checkpoint file, like a bad input file: exit 1
        print(f'error: {err}', file=sys.stderr)
        return 1
    except (UsageError, CheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except (BitstreamError, VVCError, VideoReadError, NoPersonError, FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except OSError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
