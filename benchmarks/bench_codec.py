"""Codec benchmark: keypoint bits per frame of three coders, entropy-coder time share, end-to-end speed, memory.

    python -m benchmarks.bench_codec --checkpoint checkpoints/humans256-cpu.pth [--data DIR] [--frames 100]
        [--kp-step S] [--qp 42] [--device cpu] [--no-render] [--sweep 0.005,0.01,0.02,0.04]

Clips: the test split (ted01 ted02 ted03 ted05 head04 full01 full03 full07), read from ``--data``
(default ``data/humans256/test``, prepared by tools/prepare_dataset.py; resized to the model size); if
that folder is missing, from ``../shared/data/clips`` with the codec's person-centred crop.

Printed per clip and in total, all at the same ``kp_step`` (identical reconstructed keypoints):
- keypoint bits per frame of (a) raw float16 keypoints (16 x 3K bits), (b) the GFVC-style coder
  (coding/gfvc_baseline.py: Exp-Golomb order 0 + one adaptive binary context), (c) ours
  (coding/keypoint_coder.py), payload only (key frame keypoints included, container framing not);
  the ratio (c)/(b);
- the entropy coder's share of encode and decode time (keypoint coding alone, re-timed on the same
  keypoints, over the end-to-end time);
- encode and decode frames per second end to end (VVC key frame, keypoint detection, coding;
  parsing, VVC decoding, rendering every frame and its vertices), and the peak resident memory.

``--sweep``: for each listed kp_step, our keypoint bits per frame and how much the quantization
changes the decoded frames: PSNR of frames rendered from the quantized keypoints against frames
rendered from the unquantized ones (same decoded key frame), and the largest keypoint error in
pixels at the model size. This is the measurement behind the default ``codec_params.kp_step``.
"""
import argparse
import glob
import os
import resource
import sys
import time

import numpy as np
import torch

from coding import bitstream, gfvc_baseline, keypoint_coder
from coding.codec import Decoder, Encoder, read_video

TEST_CLIPS = ('ted01', 'ted02', 'ted03', 'ted05', 'head04', 'full01', 'full03', 'full07')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clip_paths(data_dir):
    """(name, path, crop mode) of the test clips: prepared clips if present (centre square resized to the model
    size), else the raw shared clips (person-centred crop)."""
    if os.path.isdir(data_dir):
        return [(name, os.path.join(data_dir, f'{name}.mp4'), 'center') for name in TEST_CLIPS
                if os.path.isfile(os.path.join(data_dir, f'{name}.mp4'))]
    shared = os.path.join(REPO, '..', 'shared', 'data', 'clips')
    found = []
    for name in TEST_CLIPS:
        matches = sorted(glob.glob(os.path.join(shared, f'{name}_*')))
        if matches:
            found.append((name, matches[0], 'person'))
    return found


def time_keypoint_coding(quantized, kp_step):
    """Seconds to entropy-code and to entropy-decode the (T, K, 3) keypoints with our coder."""
    start = time.perf_counter()
    enc = keypoint_coder.KeypointEncoder(quantized.shape[1], kp_step)
    for q in quantized:
        enc.encode_frame(q)
    payload = enc.finish()
    mid = time.perf_counter()
    dec = keypoint_coder.KeypointDecoder(payload, quantized.shape[1], kp_step)
    for _ in quantized:
        dec.decode_frame()
    return mid - start, time.perf_counter() - mid


def psnr(a, b):
    """PSNR in dB of two float arrays in [0, 1]."""
    return 10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12))


@torch.no_grad()
def kp_step_sweep(frames, encoder, decoder, steps):
    """For each kp_step: (bits per frame of our coder, PSNR of quantized vs unquantized rendering, max kp error).

    Args: frames: uint8 (T, H, W, 3) at the model size (T >= 2); encoder after ``encode(frames)`` (its decoded
        key frame is reused); decoder: for the generator; steps: kp_step values.
    Returns: dict step -> (bits/frame, PSNR dB over frames 1..T-1, max |kp error| in pixels).
    """
    device = encoder.models.device

    def tensor(x):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).float() / 255

    kp = torch.cat([encoder.models.kp_detector(tensor(encoder.key_frame[None]))['value']]
                   + [encoder.models.kp_detector(tensor(frames[i:i + 8]))['value'] for i in range(1, len(frames), 8)])
    kp = kp.cpu().numpy()
    source_features = decoder.models.generator.encode_source(tensor(encoder.key_frame[None]))

    def render(points):
        source = {'value': torch.from_numpy(points[:1]).to(device)}
        return np.stack([decoder.models.generator.render(source_features, source, {'value': torch.from_numpy(p[None]).to(
            device)})['prediction'][0].cpu().numpy() for p in points[1:]])
    reference = render(kp)
    result = {}
    for step in steps:
        quantized = keypoint_coder.quantize(kp, step)
        coder = keypoint_coder.KeypointEncoder(kp.shape[1], step)
        for q in quantized:
            coder.encode_frame(q)
        recon = keypoint_coder.dequantize(quantized, step)
        result[step] = (8 * len(coder.finish()) / len(kp), psnr(render(recon), reference),
                        float(np.abs(recon - kp).max()) * (encoder.size[0] - 1) / 2)
    return result


def peak_memory_mb():
    """Peak resident set size of this process so far, MB (Linux ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_clip(name, path, crop, encoder, decoder, args):
    frames, _, fps = read_video(path, encoder.size[0], crop=crop, max_frames=args.frames)
    frames = np.stack(list(frames))
    t = len(frames)
    start = time.perf_counter()
    data = encoder.encode(frames, fps=fps)
    encode_s = time.perf_counter() - start
    stream = bitstream.parse(data)
    q = encoder.quantized
    gfvc_payload = gfvc_baseline.encode(q)
    if not np.array_equal(gfvc_baseline.decode(gfvc_payload, t, q.shape[1]), q):
        raise RuntimeError(f'{name}: GFVC-style coder did not reproduce the keypoints')
    kp_enc_s, kp_dec_s = time_keypoint_coding(q, encoder.kp_step)
    row = dict(clip=name, frames=t, fps=float(fps), raw=16 * 3 * q.shape[1],
               gfvc=8 * len(gfvc_payload) / t, ours=8 * len(stream.keypoints) / t,
               kbps=encoder.account.kbps, enc_fps=t / encode_s, enc_share=kp_enc_s / encode_s)
    if args.no_render:
        row.update(dec_fps=float('nan'), dec_share=float('nan'))
    else:
        start = time.perf_counter()
        count = sum(1 for _ in decoder.decode(data))
        decode_s = time.perf_counter() - start
        row.update(dec_fps=count / decode_s, dec_share=kp_dec_s / decode_s)
    if args.sweep:
        row['sweep'] = kp_step_sweep(frames, encoder, decoder, args.sweep)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=os.path.join(REPO, 'checkpoints', 'humans256-cpu.pth'))
    parser.add_argument('--data', default=os.path.join(REPO, 'data', 'humans256', 'test'))
    parser.add_argument('--frames', type=int, default=100, help='frames per clip (from the start)')
    parser.add_argument('--kp-step', type=float, default=None, help='default: config codec_params.kp_step')
    parser.add_argument('--qp', type=int, default=None, help='key-frame QP (default: config or 42)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default; use 1 when other jobs share the CPU, '
                             'oversubscribed threads slowed decoding 15x here)')
    parser.add_argument('--no-render', action='store_true', help='skip the decoder (bits and encoder only)')
    parser.add_argument('--sweep', type=lambda text: [float(v) for v in text.split(',')], default=None,
                        help='comma-separated kp_step values: bits vs change of the decoded frames')
    args = parser.parse_args(argv)
    if args.sweep and args.no_render:
        parser.error('--sweep renders frames: drop --no-render')
    if args.threads:
        torch.set_num_threads(args.threads)
    clips = clip_paths(args.data)
    if not clips:
        sys.exit(f'no test clips found in {args.data} or ../shared/data/clips')
    encoder = Encoder(args.checkpoint, device=args.device, kp_step=args.kp_step, qp=args.qp)
    decoder = None if args.no_render else Decoder(args.checkpoint, device=args.device)
    print(f'checkpoint {args.checkpoint} (epoch {encoder.models.epoch}), kp_step {encoder.kp_step:g}, '
          f'key frame {encoder.vvc} QP {encoder.qp}, device {args.device}, torch threads '
          f'{torch.get_num_threads()}, up to {args.frames} frames per clip')
    head = (f"{'clip':8s} {'T':>4s} {'fps':>5s} | {'raw f16':>7s} {'GFVC':>7s} {'ours':>7s} {'ours/GFVC':>9s} | "
            f"{'kbps':>6s} | {'enc fps':>7s} {'EC share':>8s} | {'dec fps':>7s} {'EC share':>8s}")
    print('keypoint bits per frame (key frame keypoints included); EC = entropy coder')
    print(head)
    print('-' * len(head))
    rows = []
    for name, path, crop in clips:
        row = run_clip(name, path, crop, encoder, decoder, args)
        rows.append(row)
        print_row(row)
    frames = sum(r['frames'] for r in rows)
    total = {key: sum(r[key] * r['frames'] for r in rows) / frames
             for key in ('raw', 'gfvc', 'ours', 'kbps', 'enc_share', 'dec_share')}
    total.update(clip='all', frames=frames, fps=float('nan'),
                 enc_fps=frames / sum(r['frames'] / r['enc_fps'] for r in rows),
                 dec_fps=(float('nan') if args.no_render
                          else frames / sum(r['frames'] / r['dec_fps'] for r in rows)))
    print('-' * len(head))
    print_row(total)
    print(f'peak resident memory: {peak_memory_mb():.0f} MB')
    if args.sweep:
        print('\nkp_step sweep (all clips, frame-weighted): our keypoint bits/frame | PSNR of frames rendered from '
              'quantized vs unquantized keypoints | largest keypoint error (pixels at the model size)')
        for step in args.sweep:
            bits = sum(r['sweep'][step][0] * r['frames'] for r in rows) / frames
            quality = sum(r['sweep'][step][1] * r['frames'] for r in rows) / frames
            error = max(r['sweep'][step][2] for r in rows)
            print(f'  kp_step {step:<7g} {bits:7.1f} bits/frame | {quality:6.2f} dB | {error:5.2f} px')


def print_row(r):
    print(f"{r['clip']:8s} {r['frames']:4d} {r['fps']:5.1f} | {r['raw']:7.1f} {r['gfvc']:7.1f} {r['ours']:7.1f} "
          f"{r['ours'] / r['gfvc']:9.3f} | {r['kbps']:6.2f} | {r['enc_fps']:7.1f} {100 * r['enc_share']:7.2f}% | "
          f"{r['dec_fps']:7.1f} {100 * r['dec_share']:7.2f}%")


if __name__ == '__main__':
    main()
