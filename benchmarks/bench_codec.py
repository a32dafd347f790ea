"""Codec benchmark: keypoint bits per frame of three coders, entropy-coder time share, end-to-end speed, memory.

    python -m benchmarks.bench_codec --checkpoint checkpoints/humans256-cpu.pth [--data DIR] [--frames 100]
        [--kp-step S] [--qp 42] [--device cpu] [--no-render] [--sweep 0.005,0.01,0.02,0.04]
    python -m benchmarks.bench_codec --long-minutes 10 [--short-seconds 20] [--long-fps 10] [--start-frame N]
        [--encode-args "..."] [--work-dir DIR | --keep]
    (either with --out FILE.md: what is printed is also written there, under the command, machine and date)

Clips: the test split (ted01 ted02 ted03 ted05 head04 full01 full03 full07), read from ``--data``
(default ``data/humans256/test``, prepared by tools/prepare_dataset.py; resized to the model size); if
that folder is missing, from ``../shared/data/clips`` with the codec's person-centred crop.

Printed per clip and in total, all at the same ``kp_step`` (identical reconstructed keypoints):
- keypoint bits per frame of (a) raw float16 keypoints (16 x 3K bits), (b) the GFVC-style coder
  (coding/gfvc_baseline.encode: Exp-Golomb order 0 + one adaptive binary context kept across the clip), (c) ours
  (coding/keypoint_coder.py), payload only (key frame keypoints included, container framing not);
  the ratio (c)/(b);
- (d) the faithful count of the JVET GFVC reference software (coding/gfvc_baseline.reference_frame_bits: one
  byte-padded file per inter frame, PPM order-0 model restarted every frame, marker bin, EOF), in bits per *inter*
  frame (key frames cost it nothing), and the ratio (c)/(d) (ours still pays for the key frames' keypoints);
- the entropy coder's share of encode and decode time (keypoint coding alone, re-timed on the same
  keypoints, over the end-to-end time);
- encode and decode frames per second end to end (VVC key frame, keypoint detection, coding;
  parsing, VVC decoding, rendering every frame and its vertices), and the peak resident memory.

``--long-minutes M [--short-seconds S] [--long-fps 10] [--start-frame N]`` (issue 10 item 4) replaces the above:
the test clips, resampled to ``--long-fps`` at the model size (coding.codec.read_video), are played one after the
other in the order above, repeated until the length is reached, and written losslessly once (video_io.write_video)
as an M-minute and an S-second input. Each is coded by ``codec.py encode --no-crop`` and decoded by ``codec.py
decode`` as separate processes, run through benchmarks/peak_rss.py, which records the process's own peak resident
memory (VmHWM; not getrusage, whose ru_maxrss on Linux includes the size of the benchmark process that started
it). Printed: frames, key frames,
clip boundaries (cuts), kbps, wall time and peak memory of every run, the long / short peak-memory ratio (target:
within 10 %), and whether ``codec.py decode --start-frame N`` (default: the middle) on the long file gives
bit-exactly frames N.. of its full decode (the lossless decoded videos compared frame by frame).

``--sweep``: for each listed kp_step, our keypoint bits per frame and how much the quantization
changes the decoded frames: PSNR of frames rendered from the quantized keypoints against frames
rendered from the unquantized ones (same decoded key frame), and the largest keypoint error in
pixels at the model size. This is the measurement behind the default ``codec_params.kp_step``.
"""
import argparse
import contextlib
import glob
import io
import itertools
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from coding import bitstream, gfvc_baseline, keypoint_coder
from coding.codec import Decoder, Encoder, read_video
from evaluation.rd import machine_description
from modules.render import frames_to_tensor
from video_io import atomic_path, iter_frames, write_video

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

    detect = encoder.models.kp_detector
    kp = torch.cat([detect(frames_to_tensor(encoder.key_frame[None], device))]
                   + [detect(frames_to_tensor(frames[i:i + 8], device)) for i in range(1, len(frames), 8)])
    kp = kp.cpu().numpy()
    source_features = decoder.models.generator.encode_source(frames_to_tensor(encoder.key_frame[None], device))

    def render(points):
        source = torch.from_numpy(points[:1]).to(device)
        return np.stack([decoder.models.generator.render(source_features, source, torch.from_numpy(p[None]).to(
            device))['prediction'][0].cpu().numpy() for p in points[1:]])
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
    reference = gfvc_baseline.reference_frame_bits(q, encoder.account.key_frames)
    row = dict(clip=name, frames=t, fps=float(fps), raw=16 * 3 * q.shape[1],
               gfvc=8 * len(gfvc_payload) / t, inter=len(reference), gfvc_ref=float(reference.mean()),
               ours=8 * sum(len(s.keypoints) for s in stream.segments) / t,
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
    long = parser.add_argument_group('long input in bounded memory (issue 10 item 4)')
    long.add_argument('--long-minutes', type=float, default=None,
                      help='instead of the per-clip benchmark: encode and decode a concatenation of the test clips '
                           'this long and one --short-seconds long with codec.py, and compare peak memory')
    long.add_argument('--short-seconds', type=float, default=20.0, help='length of the short input (default 20)')
    long.add_argument('--long-fps', type=float, default=10.0,
                      help='frame rate both inputs are resampled to (default 10: 10 minutes = 6000 frames)')
    long.add_argument('--start-frame', type=int, default=None,
                      help='frame the seek decode of the long file starts at (default: the middle)')
    long.add_argument('--encode-args', default='', help='extra codec.py encode options, e.g. "--refresh-threshold 5"')
    long.add_argument('--work-dir', default=None, help='folder for the inputs, bitstreams, decodes and logs '
                                                       '(kept; default: a temporary folder, removed)')
    long.add_argument('--keep', action='store_true', help='keep the temporary folder')
    parser.add_argument('--out', default=None,
                        help='also write what is printed to this Markdown file (atomically), under the command line')
    args = parser.parse_args(argv)
    if args.long_minutes is not None and not (args.long_minutes > 0 and args.short_seconds > 0 and args.long_fps > 0):
        parser.error('--long-minutes, --short-seconds and --long-fps must be > 0')
    if args.sweep and args.no_render:
        parser.error('--sweep renders frames: drop --no-render')
    if not args.out:
        return run(args)
    report = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, report)):
        result = run(args)
    command = 'python -m benchmarks.bench_codec ' + ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None
                                                                                       else argv))
    with atomic_path(args.out) as tmp:
        tmp.write_text(f'# Codec benchmark\n\nMade by `{command}` on {machine_description()}, '
                       f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n```\n{report.getvalue()}```\n")
    return result


class _Tee:
    """A text stream that writes to several (stdout and a buffer)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def run(args):
    """The benchmark chosen by the parsed ``args`` (the long-input one with ``--long-minutes``)."""
    if args.long_minutes is not None:
        return long_input_benchmark(args)
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
            f"{'GFVC ref':>8s} {'ours/ref':>8s} | "
            f"{'kbps':>6s} | {'enc fps':>7s} {'EC share':>8s} | {'dec fps':>7s} {'EC share':>8s}")
    print('keypoint bits per frame (key frame keypoints included); GFVC ref: the GFVC reference software, bits per '
          'inter frame (file sizes); EC = entropy coder')
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
    inter = sum(r['inter'] for r in rows)
    total.update(clip='all', frames=frames, fps=float('nan'), inter=inter,
                 gfvc_ref=sum(r['gfvc_ref'] * r['inter'] for r in rows) / inter,
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
          f"{r['ours'] / r['gfvc']:9.3f} | {r['gfvc_ref']:8.1f} {r['ours'] / r['gfvc_ref']:8.3f} | {r['kbps']:6.2f} | "
          f"{r['enc_fps']:7.1f} {100 * r['enc_share']:7.2f}% | "
          f"{r['dec_fps']:7.1f} {100 * r['dec_share']:7.2f}%")


# ---------------------------------------------------------------------------------------------------------------
# Long input in bounded memory (issue 10 item 4): --long-minutes M --short-seconds S

def concatenated_clips(clips, size, fps, total):
    """The first ``total`` frames of the clips played one after the other, in the given order, repeated from the
    first clip until ``total`` is reached.

    Args:
        clips: (name, path, crop mode) as from :func:`clip_paths`. size: model frame side in pixels. fps: frame rate
            each clip is resampled to (coding.codec.read_video; never raised). total: frames wanted (>= 1).
    Yields: (uint8 (size, size, 3) RGB frame, clip name, True for the first frame of a clip), read one at a time.
    Raises: ValueError if no clip yields a frame; video_io.VideoReadError for an unreadable clip.
    """
    produced = 0
    while produced < total:
        before = produced
        for name, path, crop in clips:
            frames, _, _ = read_video(path, size, crop=crop, fps=fps)
            for index, frame in enumerate(frames):
                yield frame, name, index == 0
                produced += 1
                if produced == total:
                    return
        if produced == before:
            raise ValueError(f'the clips {[c[0] for c in clips]} hold no frame')


def build_concatenated_input(path, clips, size, fps, total):
    """Write :func:`concatenated_clips` losslessly (video_io.write_video, H.264 RGB qp 0) to ``path`` at ``fps``.

    Returns: list of (first frame index, clip name), one per clip played (the clip boundaries).
    Raises: as :func:`concatenated_clips` and video_io.write_video.
    """
    starts = []

    def frames():
        for index, (frame, name, first) in enumerate(concatenated_clips(clips, size, fps, total)):
            if first:
                starts.append((index, name))
            yield frame
    write_video(path, frames(), fps)
    return starts


def run_with_peak_memory(arguments, work_dir, label, threads=None):
    """Run ``python codec.py ARGUMENTS`` in the repository as its own process, through benchmarks/peak_rss.py.

    Returns: dict peak_mb (the codec process's own peak RSS, MB: VmHWM, see benchmarks/peak_rss.py), seconds (its
        wall time), log (path of its stdout + stderr), ru_maxrss_mb (for reference only).
    Raises: RuntimeError naming the command and the end of its log if it fails.
    """
    report = os.path.join(work_dir, f'{label}.json')
    log = os.path.join(work_dir, f'{label}.log')
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    command = [sys.executable, '-m', 'benchmarks.peak_rss', report, 'codec.py'] + list(arguments)
    with open(log, 'w') as out:
        status = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    if status != 0 or not os.path.isfile(report):
        with open(log) as handle:
            tail = handle.read()[-3000:]
        raise RuntimeError(f'{label}: {" ".join(command)} exited with {status}:\n{tail}')
    with open(report) as handle:
        result = json.load(handle)
    result['log'] = log
    return result


def stream_summary(path):
    """(frames, fps as Fraction, key-frame positions, kbps = file size x 8 over the clip's duration) of a .s2d."""
    with bitstream.S2DFile(path) as source:
        stream = source.stream
        frames = stream.frame_count
        return (frames, stream.fps, [s.start_frame for s in stream.segments],
                8 * os.path.getsize(path) * float(stream.fps) / frames / 1000)


def compare_decodes(full_video, seek_video, start):
    """Compare a decode from ``start`` with frames start.. of a full decode (both lossless videos).

    Returns: (frames in the seek decode, frames of the full decode from ``start`` on, how many of them are
        bit-exactly equal pairwise, index of the first differing frame or None).
    """
    full = (frame for _, frame in iter_frames(full_video, itertools.count(start)))
    seek = (frame for _, frame in iter_frames(seek_video))
    count_full = count_seek = equal = 0
    first_diff = None
    for a, b in itertools.zip_longest(full, seek):
        count_full += a is not None
        count_seek += b is not None
        if a is not None and b is not None and np.array_equal(a, b):
            equal += 1
        elif first_diff is None:
            first_diff = start + max(count_full, count_seek) - 1
    return count_seek, count_full, equal, first_diff


def long_input_benchmark(args):
    """Encode and decode a long and a short concatenation of the test clips with ``codec.py`` (separate processes),
    print each process's peak memory, time, frames, kbps and key frames, the long/short memory ratio, and check that
    ``codec.py decode --start-frame N`` on the long file equals frames N.. of its full decode.

    Returns: dict with 'rows' (one dict per run) and 'seek' (the comparison). Raises RuntimeError if a run fails.
    """
    clips = clip_paths(args.data)
    if not clips:
        sys.exit(f'no test clips found in {args.data} or ../shared/data/clips')
    from modules.build import load_inference_models
    size = load_inference_models(args.checkpoint, 'cpu').config['dataset_params']['frame_shape'][0]
    lengths = {'short': max(1, round(args.short_seconds * args.long_fps)),
               'long': max(1, round(args.long_minutes * 60 * args.long_fps))}
    work = args.work_dir or tempfile.mkdtemp(prefix='s2d_long_')
    os.makedirs(work, exist_ok=True)
    common = ['--checkpoint', args.checkpoint, '--device', args.device]
    print(f'long-input benchmark: clips {" ".join(c[0] for c in clips)} (crop {clips[0][2]}) at {size}x{size}, '
          f'{args.long_fps:g} fps, repeated in this order; short {lengths["short"]} frames, long {lengths["long"]} '
          f'frames; checkpoint {args.checkpoint}; work folder {work}', flush=True)
    rows, summaries = [], {}
    try:
        for kind in ('short', 'long'):
            video = os.path.join(work, f'{kind}.mp4')
            start = time.perf_counter()
            starts = build_concatenated_input(video, clips, size, args.long_fps, lengths[kind])
            print(f'{kind}: {lengths[kind]} frames, {len(starts)} clips played, written in '
                  f'{time.perf_counter() - start:.0f} s', flush=True)
            coded = os.path.join(work, f'{kind}.s2d')
            enc = run_with_peak_memory(['encode', *common, '--input', video, '--output', coded, '--no-crop',
                                        *args.encode_args.split()], work, f'{kind}-encode', args.threads)
            frames, fps, keys, kbps = stream_summary(coded)
            summaries[kind] = (frames, keys)
            rows.append(dict(run=f'{kind} encode', frames=frames, kbps=kbps, keys=len(keys), cuts=len(starts) - 1,
                             **enc))
            print_long_row(rows[-1], header=len(rows) == 1)
            dec = run_with_peak_memory(['decode', *common, '--input', coded, '--output',
                                        os.path.join(work, f'{kind}-full.mp4')], work, f'{kind}-decode', args.threads)
            rows.append(dict(run=f'{kind} decode', frames=frames, kbps=kbps, keys=len(keys), cuts=len(starts) - 1,
                             **dec))
            print_long_row(rows[-1])
        frames, keys = summaries['long']
        seek_from = frames // 2 if args.start_frame is None else args.start_frame
        seek = run_with_peak_memory(['decode', *common, '--input', os.path.join(work, 'long.s2d'), '--output',
                                     os.path.join(work, 'long-seek.mp4'), '--start-frame', str(seek_from)],
                                    work, 'long-seek', args.threads)
        rows.append(dict(run=f'long decode from {seek_from}', frames=frames - seek_from, kbps=float('nan'),
                         keys=sum(1 for k in keys if k > seek_from) + 1, cuts=-1, **seek))
        print_long_row(rows[-1])
        by_run = {r['run']: r for r in rows}
        print('\npeak memory long / short (the codec process alone; target within 10 %):')
        for step in ('encode', 'decode'):
            long_mb, short_mb = by_run[f'long {step}']['peak_mb'], by_run[f'short {step}']['peak_mb']
            print(f'  {step}: {long_mb:.0f} / {short_mb:.0f} MB = {long_mb / short_mb:.3f} '
                  f'({"within" if long_mb <= 1.1 * short_mb else "NOT within"} 10 %)')
        key_before = max(k for k in keys if k <= seek_from)
        count_seek, count_full, equal, first_diff = compare_decodes(
            os.path.join(work, 'long-full.mp4'), os.path.join(work, 'long-seek.mp4'), seek_from)
        exact = count_seek == count_full == equal
        print(f'\n--start-frame {seek_from} (key frame at {key_before}): {count_seek} frames decoded, '
              f'{equal} of the full decode\'s {count_full} frames {seek_from}.. bit-exactly equal: '
              + ('BIT-EXACT' if exact else f'DIFFERENT (first difference at frame {first_diff})'))
        return {'rows': rows, 'seek': dict(start=seek_from, key_frame=key_before, frames=count_seek,
                                           full_frames=count_full, equal=equal, exact=exact)}
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep or args.work_dir:
            print(f'files kept in {work}')


def print_long_row(row, header=False):
    if header:
        print(f"\n{'run':24s} {'frames':>6s} {'key frames':>10s} {'cuts':>5s} {'kbps':>7s} {'time s':>7s} "
              f"{'peak MB':>8s}")
    cuts = '' if row['cuts'] < 0 else str(row['cuts'])
    print(f"{row['run']:24s} {row['frames']:6d} {row['keys']:10d} {cuts:>5s} {row['kbps']:7.3f} "
          f"{row['seconds']:7.0f} {row['peak_mb']:8.0f}", flush=True)


if __name__ == '__main__':
    main()
