"""Training-recipe ablations: the same budget for every variant, one results table regenerated from the runs.

An ablation file (e.g. ``config/ablations/humans256-cpu.yaml``) names a base config, an optional parent checkpoint
that every variant is fine-tuned from, the budget (``train_params`` overrides such as ``num_epochs`` and
``num_repeats``, identical for all variants) and the variants, each a dict of dotted config overrides::

    base: config/humans256-cpu.yaml
    parent: checkpoints/humans256-cpu.pth
    budget: {num_epochs: 8, num_repeats: 5}
    variants:
      baseline: {}
      guidance: {train_params.loss_weights.keypoint_guidance: 10}
    compare: {shipped: checkpoints/humans256-cpu.pth}   # optional: more checkpoints in the motion table
    notes: what the tables show                          # optional: printed after them

Commands::

    python -m tools.ablate run ABLATIONS.yaml --variant guidance [--log-dir log/ablations] [--device cpu]
    python -m tools.ablate report ABLATIONS.yaml [--log-dir log/ablations] [--out docs/TRAINING.md]

``run`` trains one variant into ``LOG_DIR/<ablation file stem>/<variant>/`` (resumes there if interrupted).
``report`` reads every variant's ``best.pth`` (selected on the validation split, ``dataset_params.validation_names``)
and ``checkpoint.pth`` and writes a Markdown table: iterations, hours (of training, summed over the sittings that
resumed the run; n/a for checkpoints written before they were recorded), the validation PSNR of the decoded frames, of
the frozen key-reference frame and their difference (how much of the motion the model transmits), L1 and vertex L1.
With ``--motion-frames N`` it also renders the first N frames of every validation clip with each variant's best
weights (first frame as key-reference frame, uncompressed keypoints) and tabulates MS-SSIM and the motion fidelity
(``evaluation.motion``: face-landmark error, mouth / yaw / pitch correlations) against the frozen key frame.
"""
import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import yaml

from logger import load_checkpoint
from video_io import atomic_path


def load_ablations(path):
    """Parse an ablation file. Returns dict with 'base', 'parent' (or None), 'budget', 'variants'.
    Raises FileNotFoundError / ValueError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ablation file '{path}' does not exist; see config/ablations/")
    with open(path) as handle:
        spec = yaml.safe_load(handle)
    if not isinstance(spec, dict) or not isinstance(spec.get('variants'), dict) or 'base' not in spec:
        raise ValueError(f"'{path}' is not an ablation file: it needs 'base' (a config) and 'variants' (name -> "
                         f"overrides)")
    return {'base': spec['base'], 'parent': spec.get('parent'), 'budget': spec.get('budget') or {},
            'variants': spec['variants'], 'compare': spec.get('compare') or {}, 'notes': spec.get('notes')}


def apply_overrides(config, overrides):
    """Copy of ``config`` with dotted keys set (``'train_params.loss_weights.vertex': 0``).
    Raises KeyError naming a dotted key whose parent section does not exist (a typo)."""
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split('.')
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise KeyError(f"override '{dotted}': section '{key}' does not exist in the config")
            node = node[key]
        node[leaf] = value
    return config


def variant_config(spec, name):
    """The full config of variant ``name``: base config + budget + the variant's overrides."""
    from run import load_config
    if name not in spec['variants']:
        raise KeyError(f"no variant '{name}'; the file has {sorted(spec['variants'])}")
    config = load_config(spec['base'])
    config = apply_overrides(config, {f'train_params.{k}': v for k, v in spec['budget'].items()})
    return apply_overrides(config, spec['variants'][name] or {})


def run_variant(ablation_file, name, log_dir, device):
    """Train variant ``name`` (fine-tuned from the parent, or resumed from its own last checkpoint)."""
    import train
    spec = load_ablations(ablation_file)
    config = variant_config(spec, name)
    run_dir = Path(log_dir) / Path(ablation_file).stem / name
    own = run_dir / 'checkpoint.pth'
    checkpoint = str(own) if own.is_file() else spec['parent']
    print(f"variant {name}: {run_dir} (from {checkpoint or 'scratch'})")
    return train.train(config, str(run_dir), device, checkpoint_path=checkpoint)


def _row(name, run_dir):
    best, last = run_dir / 'best.pth', run_dir / 'checkpoint.pth'
    if not best.is_file() or not last.is_file():
        return None
    selected = load_checkpoint(str(best))
    final = load_checkpoint(str(last))
    val = selected['validation']
    seconds = final.get('train_seconds')  # absent in checkpoints written before it was recorded
    return {'variant': name, 'iterations': final.get('iteration', 0),
            'hours': None if seconds is None else seconds / 3600,
            'best_iteration': selected.get('iteration', 0), 'psnr': val.get('psnr'),
            'psnr_frozen': val.get('psnr_frozen'), 'l1': val.get('l1'), 'vertex_l1': val.get('vertex_l1'),
            'flow_epe': val.get('flow_epe'), 'flow_epe_frozen': val.get('flow_epe_frozen'),
            'keypoint_flow_epe': val.get('keypoint_flow_epe')}


def _fmt(value, digits):
    return 'n/a' if value is None else f'{value:.{digits}f}'


#: motion-table columns: (motion_fidelity key or 'ms_ssim', header, digits)
MOTION_COLUMNS = (('ms_ssim', 'MS-SSIM', 4), ('face_error_px', 'face error px', 2),
                  ('face_error_norm', 'face NME', 3), ('mouth_corr', 'mouth r', 2),
                  ('mouth_amplitude', 'mouth amplitude', 2), ('yaw_corr', 'yaw r', 2),
                  ('pitch_corr', 'pitch r', 2), ('pose_error_px', 'pose error px', 2))


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def motion_table(spec, root, num_frames):
    """Markdown lines: per variant (and the frozen key frame, and the parent checkpoint) the means over the
    validation clips of MS-SSIM and the motion fidelity of the first ``num_frames`` frames, rendered from the
    variant's ``best.pth``."""
    import numpy as np
    import torch
    from evaluation.metrics import frames_to_tensor, ms_ssim
    from evaluation.motion import amplitude_ratio, motion_fidelity, teacher_landmarks
    from evaluation.sequences import load_sequences
    from frames_dataset import FramesDataset
    from modules.build import load_inference_models
    from modules.render import reconstruct
    base = variant_config(spec, next(iter(spec['variants'])))
    params = base['dataset_params']
    names = params.get('validation_names')
    if not names:
        raise ValueError(f"{spec['base']} has no dataset_params.validation_names to evaluate on")
    dataset = FramesDataset(params['root_dir'], frame_shape=params['frame_shape'], is_train=False, split='train',
                            names=names, vertices_dir=None)
    sequences = list(load_sequences(dataset, num_frames))
    references = [teacher_landmarks(seq.frames) for seq in sequences]
    decoders = {'frozen key frame': None}
    if spec['parent']:
        decoders[f"parent ({Path(spec['parent']).name})"] = Path(spec['parent'])
    decoders.update({name: root / name / 'best.pth' for name in spec['variants']
                     if (root / name / 'best.pth').is_file()})
    decoders.update({label: Path(path) for label, path in spec['compare'].items()})
    lines = [f"Motion on the {len(sequences)} validation clips ({', '.join(names)}), first {num_frames} frames at "
             f"{params['frame_shape'][0]}x{params['frame_shape'][1]}, means over clips (r: Pearson correlation of "
             f"the original's and the decoded series; the frozen key frame gets 0; mouth amplitude: standard "
             f"deviation of the decoded mouth opening over the original's, 1 = opens and closes as much, 0 = still):",
             '',
             '| decoded by | ' + ' | '.join(header for _, header, _ in MOTION_COLUMNS) + ' |',
             '|---|' + '---|' * len(MOTION_COLUMNS)]
    for label, checkpoint in decoders.items():
        models = None if checkpoint is None else load_inference_models(str(checkpoint))
        rows = []
        for seq, reference in zip(sequences, references):
            decoded = np.repeat(seq.frames[:1], len(seq.frames), 0) if models is None else \
                reconstruct(models, seq.frames)['frames']
            row = motion_fidelity(seq.frames, decoded, float(seq.fps or 25), original_landmarks=reference)
            row['mouth_amplitude'] = amplitude_ratio(row['mouth_std_decoded'], row['mouth_std_original'])
            with torch.no_grad():
                row['ms_ssim'] = float(ms_ssim(frames_to_tensor(decoded), frames_to_tensor(seq.frames)).mean())
            rows.append(row)
        cells = [_fmt(_mean([r[key] for r in rows]), digits) for key, _, digits in MOTION_COLUMNS]
        lines.append(f"| {label} | " + ' | '.join(cells) + ' |')
    return lines


def report(ablation_file, log_dir, out, motion_frames=0):
    """Write the Markdown results table of every finished variant to ``out`` (and, with ``motion_frames`` > 0,
    the motion table of :func:`motion_table`); returns the text."""
    spec = load_ablations(ablation_file)
    root = Path(log_dir) / Path(ablation_file).stem
    lines = ['# Training-recipe ablations', '', f"## `{ablation_file}`", '',
             f"Regenerated by `python -m tools.ablate report {ablation_file}"
             + (f" --motion-frames {motion_frames}" if motion_frames else '') + (f" --out {out}" if out else '')
             + f"` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({platform.machine()}, "
             f"{platform.node() or 'unknown host'}). Base config `{spec['base']}`, every variant fine-tuned from "
             f"`{spec['parent'] or 'scratch'}` with the same budget {spec['budget']}. Validation: held-out training "
             f"clips (`dataset_params.validation_names`), first frame as the key-reference frame, uncompressed "
             f"keypoints; best checkpoint by validation L1. 'gain' = PSNR of the decoded frames minus PSNR of the "
             f"key-reference frame held still: the part of the motion the model transmits. 'motion EPE': end-point "
             f"error in px of the generator's 2D motion against the optical flow to the key frame (frozen: the "
             f"flow's magnitude), 'keypoint EPE' the same for the keypoints' displacements against the flow at them "
             f"(n/a for checkpoints that predate them).", '',
             '| variant | overrides | iterations | hours | best at | PSNR dB | frozen PSNR dB | gain dB | L1 | '
             'vertex L1 | motion EPE px | frozen EPE px | keypoint EPE px |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for name, overrides in spec['variants'].items():
        row = _row(name, root / name)
        if row is None:
            lines.append(f"| {name} | {overrides or '-'} | not run | | | | | | | | | | |")
            continue
        gain = None if row['psnr'] is None or row['psnr_frozen'] is None else row['psnr'] - row['psnr_frozen']
        lines.append(f"| {name} | {overrides or '-'} | {row['iterations']} | {_fmt(row['hours'], 2)} | "
                     f"{row['best_iteration']} | {_fmt(row['psnr'], 2)} | {_fmt(row['psnr_frozen'], 2)} | "
                     f"{_fmt(gain, 2)} | {_fmt(row['l1'], 4)} | {_fmt(row['vertex_l1'], 4)} | "
                     f"{_fmt(row['flow_epe'], 2)} | {_fmt(row['flow_epe_frozen'], 2)} | "
                     f"{_fmt(row['keypoint_flow_epe'], 2)} |")
    if motion_frames:
        lines += [''] + motion_table(spec, root, motion_frames)
    if spec['notes']:
        lines += ['', spec['notes'].strip()]
    text = '\n'.join(lines) + '\n'
    if out:
        with atomic_path(out) as temporary:
            temporary.write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=('run', 'report'))
    parser.add_argument('ablations', help='ablation YAML file (see config/ablations/)')
    parser.add_argument('--variant', help='variant to train (run)')
    parser.add_argument('--log-dir', default='log/ablations', help='parent folder of the runs')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='Markdown file to write (report; default: print only)')
    parser.add_argument('--motion-frames', type=int, default=0,
                        help='report: also measure motion fidelity on this many frames of each validation clip')
    args = parser.parse_args(argv)
    try:
        if args.command == 'run':
            if not args.variant:
                raise ValueError('run needs --variant NAME')
            run_variant(args.ablations, args.variant, args.log_dir, args.device)
        else:
            print(report(args.ablations, args.log_dir, args.out, args.motion_frames))
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
