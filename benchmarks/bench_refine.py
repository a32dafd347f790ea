"""Encoder-side keypoint refinement (coding/refine.py): what each number of steps buys, and costs, on clips held out
of training.

    python -m benchmarks.bench_refine [--checkpoint checkpoints/humans256-cpu.pth] [--steps 0 5 10 20] [--qp 42]
        [--config config/humans256-cpu.yaml] [--frames 60] [--videos face17 head10 ...] [--split train]
        [--out docs/REFINE.md]

Clips: by default the validation clips of ``--config`` (``dataset_params.validation_names``, in the ``train`` split
of its data root): the refinement's settings are chosen on them, never on the test split (``--split test`` measures
the test split, for reporting). Each clip's first ``--frames`` frames are coded by the Sparse2Dense encoder at key
QP ``--qp`` (one key frame, no refresh) with each ``--steps`` value, decoded, and compared with the original; the
frozen key frame (the decoded key frame held still) is the no-motion baseline. The encoder warm-starts each batch's
search from the correction found for the previous frame (``Encoder._refine``); docs/REFINE.md at commit e976461
holds the numbers of the earlier cold start (every batch searched from the detector's keypoints).

Printed per clip and as means over the clips: kbps (at the clip's frame rate), keypoint bits per inter frame,
encoder seconds per frame (this machine), RGB PSNR, MS-SSIM, VMAF, and the motion fidelity of evaluation/motion.py:
face-landmark error in pixels at the model size, and the correlations of mouth opening, head yaw and pitch with
the original.
"""
import argparse
import time

import numpy as np

from benchmarks.split_args import add_test_split_arguments, read_config
from coding.codec import Decoder, Encoder
from coding.vvc import encode_intra
from evaluation.metrics import MetricSuite
from evaluation.rd import machine_description
from evaluation.sequences import load_sequences
from frames_dataset import FramesDataset
from video_io import atomic_path

#: printed columns: (name, format)
COLUMNS = (('kbps', '{:.2f}'), ('kp bits/frame', '{:.1f}'), ('encode s/frame', '{:.2f}'), ('PSNR', '{:.2f}'),
           ('MS-SSIM', '{:.3f}'), ('VMAF', '{:.1f}'), ('face px', '{:.2f}'), ('mouth r', '{:.2f}'),
           ('yaw r', '{:.2f}'), ('pitch r', '{:.2f}'))


def sequences(config, split, frames, names):
    """The clips to measure: ``names`` (default: the validation clips for split 'train', all for 'test')."""
    params = config['dataset_params']
    if split == 'train':
        names = names or params.get('validation_names')
        if not names:
            raise SystemExit('the config names no validation clips (dataset_params.validation_names): '
                             'pass --videos')
    dataset = FramesDataset(params['root_dir'], frame_shape=params['frame_shape'], is_train=False, split=split,
                            names=names, vertices_dir=None)
    return load_sequences(dataset, frames)


def scores(suite, sequence, decoded, fps, landmarks):
    """The quality and motion columns of one decoded sequence."""
    quality = suite.sequence(sequence.frames, decoded, fps)
    motion = suite.motion(sequence.frames, decoded, fps, landmarks)
    return {'PSNR': quality['psnr'], 'MS-SSIM': quality['ms_ssim'], 'VMAF': quality['vmaf'],
            'face px': motion['face_error_px'], 'mouth r': motion['mouth_corr'], 'yaw r': motion['yaw_corr'],
            'pitch r': motion['pitch_corr']}


def code(encoder, decoder, sequence, fps):
    """Encode and decode one sequence: (decoded frames (T, H, W, 3) uint8, rate columns)."""
    start = time.perf_counter()
    data = encoder.encode(sequence.frames, fps=fps)
    seconds = time.perf_counter() - start
    decoded = np.stack([frame for frame, _ in decoder.decode(data)])
    inter = encoder.account.keypoint_bits[1:]
    return decoded, {'kbps': encoder.account.kbps, 'kp bits/frame': float(np.mean(inter)) if inter else 0.0,
                     'encode s/frame': seconds / len(sequence.frames)}


def table(rows, names):
    """Markdown lines: one row per (clip, setting) and the means over clips per setting."""
    header = ['clip', 'setting'] + [c for c, _ in COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]

    def cell(value, fmt):
        return 'n/a' if value is None else fmt.format(value)
    for clip, setting, values in rows:
        lines.append(f'| {clip} | {setting} | ' + ' | '.join(cell(values.get(c), f) for c, f in COLUMNS) + ' |')
    for setting in names:
        mean = {}
        for column, _ in COLUMNS:
            found = [v[column] for _, s, v in rows if s == setting and v.get(column) is not None]
            mean[column] = float(np.mean(found)) if found else None
        lines.append(f'| **mean** | {setting} | ' + ' | '.join(cell(mean[c], f) for c, f in COLUMNS) + ' |')
    return lines


def main(argv=None):
    parser = add_test_split_arguments(argparse.ArgumentParser(description=__doc__.split('\n')[0]), frames=60)
    parser.add_argument('--checkpoint', default='checkpoints/humans256-cpu.pth')
    parser.add_argument('--steps', type=int, nargs='+', default=[0, 5, 10, 20])
    parser.add_argument('--qp', type=int, default=42)
    parser.add_argument('--split', choices=('train', 'test'), default='train')
    args = parser.parse_args(argv)
    config = read_config(args.config)
    suite = MetricSuite(['psnr', 'ms_ssim', 'vmaf', 'motion'])
    if 'motion' not in suite.available:
        raise SystemExit(f"the motion metric is unavailable: {suite.unavailable['motion']}")
    params = config['dataset_params']
    videos = f" --videos {' '.join(args.videos)}" if args.videos else ''
    clips = ('the validation clips (dataset_params.validation_names) in the' if args.split == 'train' and
             not args.videos else 'the')
    head = (f"Regenerated by `python -m benchmarks.bench_refine --checkpoint {args.checkpoint} --config "
            f"{args.config} --steps {' '.join(map(str, args.steps))} --qp {args.qp} --frames {args.frames} --split "
            f"{args.split}{videos}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            f"({machine_description()}); clips: {clips} `{args.split}` split of `{params['root_dir']}` at "
            f"{params['frame_shape'][1]}x{params['frame_shape'][0]}, first {args.frames} frames; key frame VVenC "
            f"intra QP {args.qp}, no refresh.")
    print(head, flush=True)
    settings = ['frozen'] + [f'{s} steps' for s in args.steps]
    encoders = [Encoder(args.checkpoint, qp=args.qp, refresh_threshold=None, refine_steps=s) for s in args.steps]
    decoder = Decoder(args.checkpoint)
    rows = []
    for sequence in sequences(config, args.split, args.frames, args.videos):
        fps = float(sequence.fps or 25)
        landmarks = suite.motion_landmarks(sequence.frames)
        key = encode_intra(sequence.frames[0], args.qp, fps=fps)
        frozen = np.repeat(key.frames, len(sequence.frames), axis=0)
        rows.append((sequence.name, 'frozen', {'kbps': key.bits * fps / len(sequence.frames) / 1000,
                                               **scores(suite, sequence, frozen, fps, landmarks)}))
        for encoder, name in zip(encoders, settings[1:]):
            decoded, rate = code(encoder, decoder, sequence, fps)
            rows.append((sequence.name, name, {**rate, **scores(suite, sequence, decoded, fps, landmarks)}))
        for line in table([r for r in rows if r[0] == sequence.name], [])[2:]:
            print(line, flush=True)
    lines = table(rows, settings)
    print('\n'.join(lines[-len(settings):]))
    if args.out:
        with atomic_path(args.out) as temporary, open(temporary, 'w') as handle:
            handle.write('# Encoder-side keypoint refinement\n\n' + __doc__.split('\n\n', 2)[2].strip() + '\n\n'
                         + head + '\n\n' + '\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
