"""Sparse2Dense codec command line.

    python codec.py encode --checkpoint CKPT --input VIDEO --output OUT.s2d [--qp 42] [--kp-step S]
                           [--frames N] [--fps F] [--vvc vvenc|vtm] [--no-crop] [--device cpu]
    python codec.py decode --input OUT.s2d --checkpoint CKPT --output RECON.mp4 [--vertices V.npz]
                           [--png-dir DIR] [--device cpu]
    python codec.py demo [--input VIDEO] [--qp QP] [--out out/demo] [--checkpoint CKPT] [--frames N]

encode: reads any video PyAV reads, brings it to the model's square size with the data tool's
person-centred crop (tools/crop.py; ``--no-crop`` requires the exact size instead), codes the first
frame with VVC and every frame's keypoints, writes the ``.s2d`` file atomically and prints the total
bits, kbps at the clip's frame rate, bits per frame and the split header / key frame / keypoints.
``--fps`` resamples the clip in time first (never above its own rate), as the data tool does.

decode: renders the frames one at a time and writes each as soon as it is made (losslessly,
H.264 RGB ``qp 0``), optional PNGs, and the body vertices (T, N, 2) as an ``.npz`` (key
'vertices', normalized image coordinates in [-1, 1]).

demo: the main job on a bundled real clip with the shipped checkpoint and the embedded VVC: encode, decode,
compare with the VVC anchor at a similar rate and with the frozen key frame; writes the bitstream, decoded,
side-by-side and vertex-overlay videos, a keypoint plot and ``report.json`` (see coding/demo.py).
"""
import argparse
import os
import sys

import numpy as np
from tqdm import tqdm

REPO = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, REPO)

from coding.bitstream import BitstreamError, write_atomic  # noqa: E402


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


def encode(args):
    """``codec.py encode``: video -> .s2d; prints the bit account."""
    from coding.codec import Encoder, read_video
    encoder = Encoder(args.checkpoint, device=args.device, kp_step=args.kp_step, qp=args.qp, vvc=args.vvc,
                      vtm=_vtm_tools(args))
    if encoder.size[0] != encoder.size[1]:
        raise ValueError(f'the model frame size {encoder.size} is not square')
    frames, count, fps = read_video(args.input, encoder.size[0], crop='none' if args.no_crop else 'person',
                                    max_frames=args.frames, fps=args.fps)
    with tqdm(total=count, unit='frame', desc='encode') as bar:
        data = encoder.encode(frames, fps=fps, progress=bar.update)
    write_atomic(args.output, data)
    acc = encoder.account
    print(f'{args.output}: {acc.frame_count} frames at {float(fps):g} fps, '
          f'key frame {encoder.vvc} QP {encoder.qp}, kp_step {encoder.kp_step:g}')
    print(f'total {acc.total_bits} bits = {acc.kbps:.3f} kbps, {acc.bits_per_frame:.1f} bits/frame')
    keypoints = sum(acc.keypoint_bits) + acc.keypoint_overhead_bits
    for name, bits in (('header', acc.header_bits), ('key frame', acc.key_frame_bits),
                       ('keypoints', keypoints)):
        print(f'  {name:10s} {bits:10.0f} bits ({100 * bits / acc.total_bits:5.1f} %)')
    if acc.frame_count > 1:
        print(f'  keypoints per inter frame: {np.mean(acc.keypoint_bits[1:]):.1f} bits')


def decode(args):
    """``codec.py decode``: .s2d -> video (+ PNGs, vertices), streaming."""
    from coding.codec import Decoder
    from coding.bitstream import read
    from tools.video_io import atomic_path, write_video
    from PIL import Image

    decoder = Decoder(args.checkpoint, device=args.device, vtm=_vtm_tools(args))
    stream = read(args.input)
    frames = decoder.decode(stream)
    vertices = []

    def written(png_dir):
        for index, (frame, verts) in enumerate(tqdm(frames, total=stream.frame_count, unit='frame',
                                                    desc='decode')):
            vertices.append(verts)
            if png_dir is not None:
                Image.fromarray(frame).save(os.path.join(png_dir, f'{index:07d}.png'))
            yield frame

    if args.png_dir:
        with atomic_path(args.png_dir) as tmp:
            tmp.mkdir()
            write_video(args.output, written(str(tmp)), stream.fps)
    else:
        write_video(args.output, written(None), stream.fps)
    if args.vertices:
        with atomic_path(args.vertices) as tmp:
            with open(tmp, 'wb') as f:
                np.savez(f, vertices=np.stack(vertices).astype(np.float32))
    print(f'{args.output}: {len(vertices)} frames at {float(stream.fps):g} fps'
          + (f'; vertices {np.shape(vertices)} -> {args.vertices}' if args.vertices else '')
          + (f'; PNGs in {args.png_dir}' if args.png_dir else ''))


def demo(args):
    """``codec.py demo``: encode + decode a real clip, compare, print the numbers (coding/demo.py)."""
    from coding.demo import format_report, run_demo
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
    enc.add_argument('--vvc', choices=('vvenc', 'vtm'), default=None,
                     help='key-frame encoder (default: config codec_params.vvc or vvenc)')
    enc.add_argument('--no-crop', action='store_true', help='no person crop: input must be the model size')
    enc.add_argument('--device', default='cpu', help="torch device, e.g. cpu or cuda:0")
    _add_vtm_options(enc, encoder=True)
    enc.set_defaults(func=encode)
    dec = sub.add_parser('decode', help='.s2d bitstream -> video, vertices')
    dec.add_argument('--input', required=True, help='.s2d file')
    dec.add_argument('--checkpoint', required=True, help='the checkpoint used for encoding')
    dec.add_argument('--output', required=True, help='reconstructed video (.mp4, lossless H.264 RGB)')
    dec.add_argument('--vertices', default=None, help='write vertices (T, N, 2) to this .npz')
    dec.add_argument('--png-dir', default=None, help='also write every frame as PNG into this folder')
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
    """Run the command line; returns the exit code (errors are printed, not raised)."""
    from coding.vvc import VVCError
    from tools.crop import NoPersonError
    from tools.video_io import VideoReadError

    args = build_parser().parse_args(argv)
    for name in ('frames', 'fps'):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            print(f'error: --{name} must be positive, got {value}', file=sys.stderr)
            return 2
    try:
        args.func(args)
    except (BitstreamError, VVCError, VideoReadError, NoPersonError, FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
