"""Export an inference checkpoint and its model card from a training run.

Usage::

    python -m tools.export_checkpoint --log-dir log/humans256-cpu_XXXX [--checkpoint best.pth] \\
        --out checkpoints/humans256-cpu.pth [--limitations TEXT_FILE]

Writes (atomically):
- ``OUT``: config, epoch, iteration, validation and the kp_detector / generator / vertex_head state dicts only
  (no discriminator, no optimizer states), loadable with ``modules.build.load_inference_models``;
- ``OUT`` with ``.md``: the model card: config file, data (the clip list of the training split), iterations, epochs,
  wall time, the best validation numbers, the loss and validation curves (``OUT`` with ``_curves.png``, read from
  the run's tensorboard events) and the limitations given in ``--limitations``.
"""
import argparse
import os
import time

import matplotlib
import torch
import yaml

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from modules.build import load_checkpoint  # noqa: E402
from modules.build import INFERENCE_NETWORKS, load_inference_models  # noqa: E402
from modules.util import num_parameters  # noqa: E402
from run import load_config  # noqa: E402
from video_io import atomic_path  # noqa: E402


def read_scalars(log_dir):
    """Tensorboard scalars of a run: {tag: (steps, values, wall_times)}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(log_dir, size_guidance={'scalars': 0})
    events.Reload()
    out = {}
    for tag in events.Tags()['scalars']:
        items = events.Scalars(tag)
        out[tag] = ([e.step for e in items], [e.value for e in items], [e.wall_time for e in items])
    return out


def lineage(log_dir):
    """The chain of training runs behind ``log_dir``: this run, then the run it was fine-tuned from (named on the
    first line of its ``log.txt`` by ``train.py``), and so on, up to a parent that is not in a run folder (e.g. a
    shipped checkpoint: the last entry's 'parent').

    Returns: list of dicts (newest first) with 'log_dir', 'parent' (checkpoint path or None), 'epochs',
    'iterations' (int, from the per-epoch lines of log.txt), 'hours' (first to last tensorboard event) and 'config'
    (the run's config.yaml as a dict, None if absent).
    """
    chain = []
    while log_dir and os.path.isfile(os.path.join(log_dir, 'log.txt')) and \
            log_dir not in [c['log_dir'] for c in chain]:
        with open(os.path.join(log_dir, 'log.txt')) as handle:
            lines = handle.read().splitlines()
        epochs = [line for line in lines if line.startswith('epoch ')]
        parent = next((line.split()[2] for line in lines if line.startswith('fine-tuning from ')), None)
        walls = [w for _, _, ws in read_scalars(log_dir).values() for w in ws]
        config_path = os.path.join(log_dir, 'config.yaml')
        config = yaml.safe_load(open(config_path)) if os.path.isfile(config_path) else None
        chain.append({'log_dir': log_dir, 'parent': parent, 'epochs': len(epochs),
                      'iterations': int(epochs[-1].split()[3].rstrip(':')) if epochs else 0,
                      'hours': (max(walls) - min(walls)) / 3600 if walls else 0.0, 'config': config})
        log_dir = os.path.dirname(parent) if parent else None
    return chain


def config_changes(old, new, prefix=''):
    """Dotted keys whose values differ between two config dicts (list of 'key: old -> new')."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f'{prefix}{key}.')
        elif a != b:
            changes.append(f'{prefix}{key}: {a} -> {b}')
    return changes


def smooth(values, window):
    """Trailing moving average (list of float) -> list of the same length."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(scalars, path):
    """Loss terms (moving average over 50 iterations) and validation metrics against iterations, one PNG."""
    losses = sorted(t for t in scalars if t.startswith('loss/'))
    validation = sorted(t for t in scalars if t.startswith('validation/'))
    fig, axes = plt.subplots(1, 1 + len(validation), figsize=(5 * (1 + len(validation)), 4))
    axes = list(axes) if len(validation) else [axes]
    for tag in losses:
        steps, values, _ = scalars[tag]
        axes[0].plot(steps, smooth(values, 50), label=tag[5:])
    axes[0].set(title='training losses (weighted, moving average 50)', xlabel='iteration', yscale='log')
    axes[0].legend(fontsize=7)
    for ax, tag in zip(axes[1:], validation):
        steps, values, _ = scalars[tag]
        ax.plot(steps, values, marker='o')
        ax.set(title=tag, xlabel='iteration')
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format='png')
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--log-dir', required=True)
    parser.add_argument('--checkpoint', default='best.pth', help='file name inside --log-dir (default best.pth)')
    parser.add_argument('--out', required=True)
    parser.add_argument('--limitations', help='markdown file with the limitations section')
    parser.add_argument('--config', help='store this config file instead of the run\'s (it must describe the same '
                                         'model and data; e.g. to add codec_params / rd_params written later)')
    args = parser.parse_args()

    source = os.path.join(args.log_dir, args.checkpoint)
    ckpt = load_checkpoint(source)
    if args.config:
        config = load_config(args.config)
        for section in ('model_params', 'dataset_params'):
            if config[section] != ckpt['config'][section]:
                raise ValueError(f"--config {args.config}: its {section} differ from the run's; export the run's "
                                 f"own config instead")
        ckpt['config'] = config
    exported = {k: ckpt[k] for k in ('config', 'epoch', 'iteration', 'validation') + INFERENCE_NETWORKS if k in ckpt}
    with atomic_path(args.out) as tmp:
        torch.save(exported, tmp)
    models = load_inference_models(args.out)  # proves the export loads

    stem = os.path.splitext(args.out)[0]
    scalars = read_scalars(args.log_dir)
    plot_curves(scalars, stem + '_curves.png')
    walls = [w for _, _, ws in scalars.values() for w in ws]
    config = ckpt['config']
    data = config['dataset_params']
    train_dir = os.path.join(data['root_dir'], 'train')
    held_out = list(data.get('validation_names') or [])
    clips = sorted(os.path.splitext(f)[0] for f in os.listdir(train_dir)) if os.path.isdir(train_dir) else []
    clips = [clip for clip in clips if clip not in held_out]
    validation = ckpt.get('validation', {})
    chain = lineage(args.log_dir)
    runs = ['', '## Training runs (newest first; each fine-tuned from the previous one\'s checkpoint)', '',
            '| run | epochs | iterations | hours | config changes against its parent |', '|---|---|---|---|---|']
    for run, parent in zip(chain, chain[1:] + [None]):
        changes = (config_changes(parent['config'], run['config'])
                   if parent and parent['config'] and run['config'] else [])
        runs.append(f"| `{run['log_dir']}` | {run['epochs']} | {run['iterations']} | {run['hours']:.2f} | "
                    + ('; '.join(changes) or '-') + ' |')
    behind = sum(r['iterations'] for r in chain[1:]) + ckpt.get('iteration', 0)
    runs.append(f"| all runs | {sum(r['epochs'] for r in chain)} | {sum(r['iterations'] for r in chain)} | "
                f"{sum(r['hours'] for r in chain):.2f} | |")
    runs += ['', f"The exported weights were trained for {behind} iterations: those of the parent runs up to the "
                 f"checkpoint each was fine-tuned from, plus {ckpt.get('iteration', 0)} of the last run (its best "
                 f"validation L1)."]
    if chain[-1]['parent']:
        runs += ['', f"The first run above was fine-tuned from `{chain[-1]['parent']}`, an exported checkpoint whose "
                     f"own training is not counted here (see its model card)."]
    limitations = open(args.limitations).read().strip() if args.limitations else ''
    lines = [
        f"# `{os.path.basename(args.out)}`",
        '',
        f"Generated by `tools/export_checkpoint.py` from `{source}` on {time.strftime('%Y-%m-%d')}.",
        '',
        f"- Size: {os.path.getsize(args.out) / 2 ** 20:.1f} MB (kp_detector, generator, vertex_head; no "
        f"discriminator or optimizer states). Weights id `{models.weights_id.hex()}`.",
        f"- Model: frame {data['frame_shape'][0]}x{data['frame_shape'][1]}, "
        f"{config['model_params']['common_params']['num_kp']} 3D keypoints, "
        f"{config['model_params']['vertex_head_params']['num_vertices']} vertices; parameters: "
        + ', '.join(f"{name} {num_parameters(getattr(models, name)):,}" for name in INFERENCE_NETWORKS) + '.',
        f"- Last run: epoch {ckpt['epoch'] + 1} of {config['train_params']['num_epochs']}, "
        f"{ckpt.get('iteration', 0)} iterations at batch {config['train_params']['batch_size']}"
        + (f", {(max(walls) - min(walls)) / 3600:.2f} h wall time (first to last logged event)" if walls else '')
        + '.',
        f"- Validation at this checkpoint ("
        + (f"held-out training clips {', '.join(held_out)}" if held_out else 'test split')
        + ", first frame as key-reference frame, uncompressed keypoints): "
        + ', '.join(f"{k} {v:.4f}" for k, v in validation.items()) + '.',
        f"- Data: `{data['root_dir']}` ({len(clips)} training clips): {', '.join(clips)}.",
        '',
        f"![curves]({os.path.basename(stem)}_curves.png) (last run)",
    ] + runs + [
        '',
        '## Config',
        '',
        '```yaml',
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        '```',
    ]
    if limitations:
        lines += ['', '## Limitations', '', limitations]
    with atomic_path(stem + '.md') as tmp:
        tmp.write_text('\n'.join(lines) + '\n')
    print(f"wrote {args.out}, {stem}.md, {stem}_curves.png")


if __name__ == '__main__':
    main()
