"""Intra versus predicted key frames, end to end (issue 10 item 1): what do inter-coded refreshed key frames save?

    python -m benchmarks.bench_key_frames [--checkpoint CKPT] [--config CFG] [--qps 42] [--thresholds 8 5 3]
        [--videos head04 ted01 full01 full03] [--frames 150]

For each clip (its first ``--frames`` frames at the model size and its own frame rate, as the RD evaluation reads
them), key QP and refresh threshold, the clip is coded twice by ``coding.codec.Encoder``: every key frame intra
(``inter_key_frames=False``) and refreshed key frames predicted from the earlier ones (``True``, the default with
VVenC). Printed per run: key frames, the key frames' share of the rate (kbps, sections with their
framing), the total rate, the mean RGB PSNR of the frames as the decoder renders them (measured by the encoder, which
renders exactly what the decoder will) and the encode time; then the mean over clips for each setting. Both modes
decide refreshes in closed loop, so they may refresh different frames.
"""
import argparse
import time

import numpy as np
import yaml

from coding.codec import Encoder
from evaluation.rd import machine_description
from evaluation.sequences import evaluation_dataset, load_sequences


def measure(encoder, sequence):
    """Encode one sequence; returns dict keys (count), key_kbps, kbps, psnr (mean dB), seconds."""
    start = time.perf_counter()
    encoder.encode(sequence.frames, fps=sequence.fps)
    seconds = time.perf_counter() - start
    account = encoder.account
    return dict(keys=len(account.key_frames), key_kbps=account.kbps * sum(account.key_frame_bits) / account.total_bits,
                kbps=account.kbps, psnr=float(np.mean(encoder.psnr)), seconds=seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='checkpoints/humans256-cpu.pth')
    parser.add_argument('--config', default='config/humans256-cpu.yaml')
    parser.add_argument('--qps', type=int, nargs='+', default=[42])
    parser.add_argument('--thresholds', type=float, nargs='+', default=[8.0, 5.0, 3.0])
    parser.add_argument('--videos', nargs='+', default=['head04', 'ted01', 'full01', 'full03'])
    parser.add_argument('--frames', type=int, default=150)
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    print(f'# {machine_description()}; {args.checkpoint}; first {args.frames} frames; VVenC nominal QPs')
    print(f"{'clip':8s} {'QP':>3s} {'D dB':>5s} {'mode':6s} {'keys':>5s} {'key kbps':>9s} {'kbps':>7s} "
          f"{'PSNR dB':>8s} {'time s':>7s}")
    # one model load per mode; QP and threshold are set per run (as coding.rate_control does)
    encoders = {inter: Encoder(args.checkpoint, inter_key_frames=inter) for inter in (False, True)}
    means = {}
    for seq in load_sequences(evaluation_dataset(config), args.frames, args.videos):
        for qp in args.qps:
            for threshold in args.thresholds:
                for inter, encoder in encoders.items():
                    encoder.qp, encoder.refresh_threshold = qp, threshold
                    row = measure(encoder, seq)
                    mode = 'inter' if inter else 'intra'
                    means.setdefault((qp, threshold, mode), []).append(row)
                    print(f"{seq.name:8s} {qp:3d} {threshold:5g} {mode:6s} {row['keys']:5d} {row['key_kbps']:9.2f} "
                          f"{row['kbps']:7.2f} {row['psnr']:8.2f} {row['seconds']:7.1f}", flush=True)
    print('\nmean over clips')
    for (qp, threshold, mode), rows in means.items():
        print(f"QP {qp} D {threshold:g} {mode:5s}: {np.mean([r['keys'] for r in rows]):5.1f} key frames, "
              f"{np.mean([r['kbps'] for r in rows]):6.2f} kbps, {np.mean([r['psnr'] for r in rows]):6.2f} dB")


if __name__ == '__main__':
    main()
