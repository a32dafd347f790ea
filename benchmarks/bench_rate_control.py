"""Rate control on the test clips (issue 10 item 2): does ``--target-kbps`` land within +-10 % on every clip?

    python -m benchmarks.bench_rate_control [--checkpoint checkpoints/humans256-cpu.pth] [--data data/humans256]
        [--frames 150] [--targets 4,12] [--clips head04,full01] [--tolerance 0.1] [--device cpu] [--out FILE.md]

For every test clip (its first ``--frames`` frames at the model size, at the clip's own frame rate, exactly as the RD
evaluation reads them: evaluation.sequences) and every target rate, ``coding.rate_control.encode_at_rate`` codes the
clip with the checkpoint (the same multi-pass search as ``codec.py encode --target-kbps``). Recorded per clip and
target: the achieved kbps (file size x 8 over the clip's duration), its error against the target, whether it is
within the tolerance, the chosen key-frame QP and refresh threshold, the number of passes (full encodes), the key
frames, and the mean PSNR of the frames as the decoder renders them (measured by the encoder).

Prints a markdown report (machine, date, command, one table row per clip and target, the passes); ``--out`` writes
it atomically, rewritten after every clip and target (marked partial until the run ends), with the rows beside it in
``<out>.json``. A run with the same ``--out`` resumes: clip x target runs already in that JSON for the same checkpoint
weights, frames and tolerance are kept, not coded again (a run takes minutes to an hour on 2 cores).
"""
import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from coding.bitstream import write_atomic
from coding.codec import Encoder
from coding.rate_control import TOLERANCE, Trial, encode_at_rate
from evaluation.rd import machine_description
from evaluation.sequences import evaluation_dataset, load_sequences
from frames_dataset import entry_stem

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(encoder, sequence, target_kbps, tolerance=TOLERANCE, on_trial=None):
    """Rate-control one clip to one target.

    Args:
        encoder: coding.codec.Encoder (its qp / refresh_threshold are set by the search).
        sequence: evaluation.sequences.Sequence with frames uint8 (T, H, W, 3) at the model size and its fps.
        target_kbps: kbit/s. tolerance: accepted relative error. on_trial: called with each rate_control.Trial.
    Returns: dict clip, frames, fps, target, kbps, error (%), within (bool), qp, threshold (dB, inf = cuts only),
        passes, key_frames, psnr (mean dB of the decoder's frames, from the encoder), seconds, trials (list of
        rate_control.Trial).
    Raises: ValueError if the clip has no frame rate; what encode_at_rate raises.
    """
    if not sequence.fps:
        raise ValueError(f'{sequence.name} has no frame rate (a frame folder?): kbps is undefined')
    start = time.perf_counter()
    result = encode_at_rate(encoder, sequence.frames, sequence.fps, target_kbps, tolerance=tolerance,
                            on_trial=on_trial)
    return dict(clip=sequence.name, frames=len(sequence.frames), fps=float(sequence.fps), target=float(target_kbps),
                kbps=result.kbps, error=100 * (result.kbps / target_kbps - 1), within=result.within_tolerance,
                qp=result.qp, threshold=result.threshold, passes=len(result.trials),
                key_frames=len(encoder.account.key_frames), psnr=float(np.nanmean(encoder.psnr)),
                seconds=time.perf_counter() - start, trials=result.trials)


def load_done(path, context):
    """Rows of an earlier run of this benchmark from its JSON (``path``) whose checkpoint weights, frames and tolerance
    match ``context``; [] when the file does not exist or was made for other settings."""
    path = Path(path)
    if not path.is_file():
        return []
    done = json.loads(path.read_text())
    if any(done.get(key) != context[key] for key in ('weights_id', 'frames', 'tolerance')):
        print(f'{path}: made for other weights, frames or tolerance; starting over')
        return []
    return [dict(row, trials=[Trial(**trial) for trial in row['trials']]) for row in done['rows']]


def save_done(path, rows, context):
    """Write the rows (and the settings they were measured with) as JSON, atomically."""
    data = {key: context[key] for key in ('weights_id', 'frames', 'tolerance')}
    data['rows'] = [dict(row, trials=[dataclasses.asdict(trial) for trial in row['trials']]) for row in rows]
    write_atomic(path, json.dumps(data, indent=1).encode())


def markdown_report(rows, context, complete=True):
    """The report as markdown text.

    Args: rows: dicts from :func:`measure`. context: dict command, machine, date, checkpoint, frames, tolerance,
        targets, clips (names). complete: False marks the report partial.
    """
    tolerance = 100 * context['tolerance']
    within = sum(r['within'] for r in rows)
    lines = ['# Rate control on the test clips', '',
             f"Made by `benchmarks/bench_rate_control.py`: `{context['command']}`", '',
             f"- machine: {context['machine']}",
             f"- date: {context['date']}" + (f" ({context['resumed']} of the rows resumed from `{context['sidecar']}`: "
                                             f"measured by earlier runs of the same command, weights, frames and "
                                             f"tolerance)" if context.get('resumed') else ''),
             f"- checkpoint: `{context['checkpoint']}`; first {context['frames']} frames of every test clip at the "
             f"model size, each at its own frame rate (evaluation.sequences, as the RD evaluation)",
             f"- targets: {', '.join(f'{t:g}' for t in context['targets'])} kbps; tolerance +-{tolerance:g} %; "
             f"`coding.rate_control.encode_at_rate` (= `codec.py encode --target-kbps`)",
             '- kbps = file size x 8 / clip duration; PSNR: mean RGB PSNR of the frames as the decoder renders them, '
             'measured by the encoder; threshold: the refresh threshold chosen (inf = key frames at scene cuts only); '
             'time s: wall time of the clip x target run (all its passes; it depends on what else the machine ran)',
             '']
    if not complete:
        lines += [f"**Partial: {len(rows)} of {len(context['clips']) * len(context['targets'])} clip x target runs "
                  f"done.**", '']
    lines += [f'**{within} of {len(rows)} within +-{tolerance:g} %.**', '',
              '| clip | fps | target kbps | achieved kbps | error % | within | QP | threshold dB | passes | key frames '
              '| PSNR dB | time s |',
              '|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['clip']} | {r['fps']:.2f} | {r['target']:g} | {r['kbps']:.3f} | {r['error']:+.1f} | "
                     f"{'yes' if r['within'] else '**no**'} | {r['qp']} | {r['threshold']:g} | {r['passes']} | "
                     f"{r['key_frames']} | {r['psnr']:.2f} | {r['seconds']:.0f} |")
    lines += ['', '## Passes', '', 'Every full encode in the order run: QP / refresh threshold dB -> kbps (key frames, '
              'PSNR dB).', '']
    for r in rows:
        passes = '; '.join(f'{t.qp}/{t.threshold:g} -> {t.kbps:.2f} ({t.key_frames}, {t.psnr:.2f})'
                           for t in r['trials'])
        lines.append(f"- {r['clip']} at {r['target']:g} kbps: {passes}")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=os.path.join(REPO, 'checkpoints', 'humans256-cpu.pth'))
    parser.add_argument('--data', default=os.path.join(REPO, 'data', 'humans256'),
                        help='data root whose test split is used (default data/humans256)')
    parser.add_argument('--frames', type=int, default=150, help='first frames of each clip (default 150)')
    parser.add_argument('--targets', type=lambda text: [float(v) for v in text.split(',')], default=[4.0, 12.0],
                        help='comma-separated target rates in kbps (default 4,12)')
    parser.add_argument('--clips', type=lambda text: text.split(','), default=None,
                        help='comma-separated clip names (default: the whole test split)')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE, help='accepted relative error (default 0.1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default=None, help='write the markdown report here (atomically)')
    args = parser.parse_args(argv)
    if not all(math.isfinite(t) and t > 0 for t in args.targets):
        parser.error('--targets must be positive rates in kbps')
    if args.frames < 1:
        parser.error('--frames must be >= 1')
    encoder = Encoder(args.checkpoint, device=args.device)
    dataset = evaluation_dataset(encoder.models.config, args.data)
    clips = args.clips or [entry_stem(group[0]) for group in dataset.groups]
    context = dict(command='python -m benchmarks.bench_rate_control ' + ' '.join(shlex.quote(a) for a in
                                                                                  (sys.argv[1:] if argv is None
                                                                                   else argv)),
                   machine=machine_description(), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                   checkpoint=os.path.relpath(args.checkpoint, REPO), frames=args.frames, tolerance=args.tolerance,
                   targets=args.targets, clips=clips, weights_id=encoder.models.weights_id.hex())
    sidecar = f'{args.out}.json' if args.out else None
    context['sidecar'] = sidecar
    done = {(row['clip'], row['target']): row for row in (load_done(sidecar, context) if sidecar else [])}
    rows = []
    with tqdm(total=len(clips) * len(args.targets), unit='run', desc='rate control') as bar:
        for sequence in load_sequences(dataset, args.frames, args.clips):
            for target in args.targets:
                def trial_done(trial, name=sequence.name, target=target):
                    bar.set_postfix_str(f'{name} -> {target:g} kbps: QP {trial.qp} refresh {trial.threshold:g} dB '
                                        f'= {trial.kbps:.2f} kbps')
                row = done.get((sequence.name, float(target)))
                context['resumed'] = context.get('resumed', 0) + bool(row)
                rows.append(row or measure(encoder, sequence, target, args.tolerance, trial_done))
                bar.update(1)
                if args.out:
                    save_done(sidecar, rows, context)
                    write_atomic(args.out, markdown_report(rows, context, complete=False).encode())
    report = markdown_report(rows, context)
    if args.out:
        write_atomic(args.out, report.encode())
    print(report)
    return rows


if __name__ == '__main__':
    main()
