"""What would predicting a refreshed key frame from the previous one save over coding it intra? (issue 10 item 1)

    python -m benchmarks.bench_key_frames [--checkpoint CKPT] [--config CFG] [--qp 42] [--threshold 5]
        [--videos head04 ted01 full01 full03] [--frames 150] [--p-qp-offsets 0 -6]

For each clip (first frames of the config's test split at the model size) it encodes with key-frame refresh at
``--threshold`` dB and, for every refreshed key frame, codes it (a) intra, as the codec does, and (b) as the second
picture of a two-picture VVenC low-delay sequence after the previous key frame's original. It prints the VCL bytes
(slice data, NAL unit types 0-11; parameter sets excluded on both sides) and the RGB PSNR of both, per clip and in
all. The P picture is coded at the low-delay configuration's QP offset for its position, so at the same nominal QP
the two do not have the same quality: ``--p-qp-offsets`` also codes the pair at lower nominal QPs, and the PSNR
columns say how far apart the qualities are.
"""
import argparse
import re

import numpy as np
import yaml

from coding import vvc
from coding.codec import Encoder
from evaluation.sequences import evaluation_dataset, load_sequences
from modules.render import frames_to_tensor, psnr_rgb


def vcl_sizes(bitstream):
    """Bytes of each VCL NAL unit (H.266 nal_unit_type 0-11) of an Annex-B bitstream, in order (list of int)."""
    starts = [m.end() for m in re.finditer(b'\x00\x00\x01', bitstream)]
    sizes = []
    for i, start in enumerate(starts):
        unit = bitstream[start:starts[i + 1] - 3 if i + 1 < len(starts) else len(bitstream)].rstrip(b'\x00')
        if len(unit) >= 2 and (unit[1] >> 3) & 0x1F <= 11:
            sizes.append(len(unit))
    return sizes


def _psnr(decoded, original):
    return float(psnr_rgb(frames_to_tensor(decoded[None]), frames_to_tensor(original[None]))[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='checkpoints/humans256-cpu.pth')
    parser.add_argument('--config', default='config/humans256-cpu.yaml')
    parser.add_argument('--qp', type=int, default=42)
    parser.add_argument('--threshold', type=float, default=5.0)
    parser.add_argument('--videos', nargs='+', default=['head04', 'ted01', 'full01', 'full03'])
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--p-qp-offsets', type=int, nargs='+', default=[0, -6],
                        help='nominal QP of the two-picture sequence relative to --qp')
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    encoder = Encoder(args.checkpoint, qp=args.qp, refresh_threshold=args.threshold)
    print(f'refreshed key frames at key QP {args.qp} (VVenC nominal), refresh threshold {args.threshold:g} dB')
    print(f"{'clip':8s} {'P QP':>5s} {'keys':>5s} {'intra B':>8s} {'P B':>6s} {'P/intra':>8s} {'intra dB':>9s} "
          f"{'P dB':>6s}")
    totals = {offset: np.zeros(2) for offset in args.p_qp_offsets}
    for seq in load_sequences(evaluation_dataset(config), args.frames, args.videos):
        encoder.encode(seq.frames, fps=seq.fps)
        keys = encoder.account.key_frames
        if len(keys) < 2:
            print(f'{seq.name:8s}  (no refresh)')
            continue
        intra = [vvc.encode_intra(seq.frames[key], args.qp) for key in keys[1:]]
        intra_bytes = np.array([sum(vcl_sizes(coded.bitstream)) for coded in intra])
        intra_db = np.mean([_psnr(coded.frames[0], seq.frames[key]) for coded, key in zip(intra, keys[1:])])
        for offset in args.p_qp_offsets:
            pairs = [vvc.encode_sequence(seq.frames[[previous, key]], args.qp + offset, seq.fps or 25)
                     for previous, key in zip(keys, keys[1:])]
            p_bytes = np.array([vcl_sizes(pair.bitstream)[-1] for pair in pairs])
            p_db = np.mean([_psnr(pair.frames[-1], seq.frames[key]) for pair, key in zip(pairs, keys[1:])])
            totals[offset] += intra_bytes.sum(), p_bytes.sum()
            print(f'{seq.name:8s} {args.qp + offset:5d} {len(pairs):5d} {intra_bytes.mean():8.0f} {p_bytes.mean():6.0f} '
                  f'{p_bytes.sum() / intra_bytes.sum():8.2f} {intra_db:9.2f} {p_db:6.2f}')
    for offset, (intra_total, p_total) in totals.items():
        if intra_total:
            print(f'all, P at QP {args.qp + offset}: P / intra VCL bytes = {p_total / intra_total:.2f}')


if __name__ == '__main__':
    main()
