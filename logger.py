"""Training logs and checkpoints (FOMM-style ``Logger`` and ``Visualizer``).

- ``Logger``: ``config.yaml``, tensorboard scalars (every loss term, learning rates, iteration time, validation metrics), a
  ``Visualizer`` grid per epoch (tensorboard image + PNG in ``<log_dir>/vis/``), and ``log.txt`` with the per-epoch
  mean of every loss term.
- Checkpoints (``*.pth``): a dict with 'config', 'epoch' (last finished epoch), 'iteration', the state dicts
  'kp_detector', 'generator', 'vertex_head', 'discriminator' (optional in inference checkpoints) and the optimizer
  states 'optimizer_generator', 'optimizer_kp_detector', 'optimizer_discriminator' (optional); runs also store
  'validation' (dict of floats) and 'train_seconds' (wall-clock seconds of training and validation, summed over the
  sittings that resumed the run). Written atomically (``video_io.atomic_path``), read with
  ``torch.load(..., weights_only=True)``.
"""
import re
import time
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
import yaml

from modules.util import to_pixels
from video_io import atomic_path

#: networks stored in a training checkpoint, in this order
CHECKPOINT_NETWORKS = ('kp_detector', 'generator', 'vertex_head', 'discriminator')


def save_checkpoint(path, checkpoint):
    """Write a checkpoint dict (see module docstring) atomically to ``path``."""
    with atomic_path(path) as temporary:
        torch.save(checkpoint, temporary)


def load_checkpoint(path, map_location='cpu'):
    """Read a Sparse2Dense checkpoint for resuming or fine-tuning: :func:`modules.build.load_checkpoint` with
    ``require`` 'epoch' (an int) and the inference networks' state dicts.

    Returns: the checkpoint dict (tensors on ``map_location``).
    Raises:
        CheckpointNotFoundError (a FileNotFoundError): no such file.
        CheckpointError (a ValueError): the file is unreadable or refused, or lacks 'config', 'epoch' or a
            network's state dict (one message style: ``<file>: ...; what to do``).
    """
    from modules.build import INFERENCE_NETWORKS, load_checkpoint as read_checkpoint   # the one reader and validator
    return read_checkpoint(path, require=('epoch',) + INFERENCE_NETWORKS, map_location=map_location)


def load_matching_weights(module, state_dict):
    """Load the entries of ``state_dict`` whose name and shape match ``module`` (fine-tuning); keep the rest.

    Returns: dict with 'loaded' (count), 'missing' (module keys absent from the state dict), 'unexpected' (state
    dict keys the module lacks), 'mismatched' (list of (key, checkpoint shape, module shape)).
    """
    own = module.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    report = {'loaded': len(matching),
              'missing': sorted(k for k in own if k not in state_dict),
              'unexpected': sorted(k for k in state_dict if k not in own),
              'mismatched': sorted((k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                                   if k in own and own[k].shape != v.shape)}
    own.update(matching)
    module.load_state_dict(own)
    return report


def format_weight_report(name, report):
    """Human-readable lines for one ``load_matching_weights`` report."""
    lines = [f"{name}: loaded {report['loaded']} tensors"]
    for key, checkpoint_shape, module_shape in report['mismatched']:
        lines.append(f"  {name}.{key}: shape mismatch, checkpoint {checkpoint_shape} vs model {module_shape} "
                     f"(kept the new initialisation)")
    lines += [f"  {name}.{key}: missing from the checkpoint (new initialisation)" for key in report['missing']]
    lines += [f"  {name}.{key}: unexpected in the checkpoint (ignored)" for key in report['unexpected']]
    return lines


class Visualizer:
    """Image grid for training logs: one row per sample, columns source + kp_source, driving + kp_driving,
    deformed source, prediction, occlusion map, vertex overlay (labels green where confident, predictions red).

    Args:
        kp_size: keypoint disc radius in pixels.
        draw_border: a white 1-pixel frame around every cell.
        colormap: matplotlib colormap giving each keypoint its colour.
    """

    def __init__(self, kp_size=5, draw_border=False, colormap='gist_rainbow'):
        self.kp_size = kp_size
        self.draw_border = draw_border
        self.colormap = matplotlib.colormaps[colormap]

    def draw_keypoints(self, image, keypoints):
        """image (H, W, 3) float in [0, 1], keypoints (K, >=2) normalized -> copy with one coloured disc each."""
        image = image.copy()
        height, width = image.shape[:2]
        rows, cols = np.mgrid[:height, :width]
        for k, (x, y) in enumerate(to_pixels(keypoints[:, :2], height, width)):
            disc = (cols - x) ** 2 + (rows - y) ** 2 <= self.kp_size ** 2
            image[disc] = self.colormap(k / max(len(keypoints) - 1, 1))[:3]
        return image

    @staticmethod
    def draw_points(image, points, color):
        """Mark single pixels at normalized ``points`` (N, 2) inside the frame; image (H, W, 3) float."""
        image = image.copy()
        height, width = image.shape[:2]
        pixels = np.round(to_pixels(points, height, width)).astype(int)
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        image[pixels[inside, 1], pixels[inside, 0]] = color
        return image

    def visualize(self, batch, generated, max_rows=4):
        """Grid (rows * H, 6 * W, 3) uint8 from a training batch and ``GeneratorFullModel`` outputs.

        Args:
            batch: dict with 'source', 'driving' (B, 3, H, W) in [0, 1], 'vertices' (B, N, 2),
                'vertex_confidence' (B, N).
            generated: dict with 'kp_source', 'kp_driving' (keypoint tensors (B, K, 3) in [-1, 1]), 'prediction' (B, 3, H, W),
                'occlusion_map' (B, 1, h, w), 'vertices' (B, N, 2) and optionally 'deformed' (B, 3, H, W).
        """
        def images(tensor):
            return tensor.detach()[:max_rows].float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

        source, driving, prediction = images(batch['source']), images(batch['driving']), \
            images(generated['prediction'])
        height, width = source.shape[1:3]
        occlusion = F.interpolate(generated['occlusion_map'].detach()[:max_rows].float(), size=(height, width),
                                  mode='bilinear', align_corners=False)
        occlusion = images(occlusion.expand(-1, 3, -1, -1))
        deformed = images(generated['deformed']) if 'deformed' in generated else np.zeros_like(source)
        kp_source = generated['kp_source'].detach()[:max_rows].float().cpu().numpy()
        kp_driving = generated['kp_driving'].detach()[:max_rows].float().cpu().numpy()
        labels = batch['vertices'][:max_rows].detach().float().cpu().numpy()
        confident = batch['vertex_confidence'][:max_rows].detach().cpu().numpy() > 0
        predicted = generated['vertices'].detach()[:max_rows].float().cpu().numpy()
        rows = []
        for i in range(len(source)):
            overlay = self.draw_points(driving[i] * 0.6, labels[i][confident[i]], (0.0, 1.0, 0.0))
            overlay = self.draw_points(overlay, predicted[i], (1.0, 0.0, 0.0))
            cells = [self.draw_keypoints(source[i], kp_source[i]), self.draw_keypoints(driving[i], kp_driving[i]),
                     deformed[i], prediction[i], occlusion[i], overlay]
            if self.draw_border:
                cells = [np.pad(cell[1:-1, 1:-1], ((1, 1), (1, 1), (0, 0)), constant_values=1.0) for cell in cells]
            rows.append(np.concatenate(cells, axis=1))
        return (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)


class Logger:
    """Rank-0 training logger writing into ``log_dir``: tensorboard events, ``log.txt``, ``vis/epoch_XXXX.png``.

    Args:
        log_dir: run folder (created).
        visualizer_params: kwargs of :class:`Visualizer`.
    """

    def __init__(self, log_dir, visualizer_params=None):
        from torch.utils.tensorboard import SummaryWriter
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.log_dir))
        self.visualizer = Visualizer(**(visualizer_params or {}))
        self.epoch_losses = {}
        self.last_time = None

    def log_iter(self, iteration, losses, learning_rates):
        """Scalars of one iteration: ``losses`` {name: float} under 'loss/<name>', ``learning_rates``
        {name: float} under 'lr/<name>', and 'time/iteration_seconds' since the previous call."""
        now = time.perf_counter()
        for name, value in losses.items():
            self.writer.add_scalar(f'loss/{name}', value, iteration)
            self.epoch_losses.setdefault(name, []).append(value)
        for name, value in learning_rates.items():
            self.writer.add_scalar(f'lr/{name}', value, iteration)
        if self.last_time is not None:
            self.writer.add_scalar('time/iteration_seconds', now - self.last_time, iteration)
        self.last_time = now

    def log_epoch(self, epoch, iteration, validation=None):
        """Append the epoch's mean losses (and ``validation`` {name: float}, also sent to tensorboard under
        'validation/<name>') to ``log.txt``; returns that line."""
        parts = [f'{name} {np.mean(values):.5f}' for name, values in sorted(self.epoch_losses.items())]
        for name, value in (validation or {}).items():
            self.writer.add_scalar(f'validation/{name}', value, iteration)
            parts.append(f'val_{name} {value:.5f}')
        line = f'epoch {epoch:04d} iteration {iteration}: ' + '; '.join(parts)
        self._drop_epochs_from(epoch)
        with open(self.log_dir / 'log.txt', 'a') as handle:
            handle.write(line + '\n')
        self.writer.flush()
        self.epoch_losses = {}
        return line

    def _drop_epochs_from(self, epoch):
        """After a resume, cut ``log.txt`` before the first line of epoch >= ``epoch`` (written by the run that
        was interrupted after its last checkpoint), so no epoch appears twice."""
        path = self.log_dir / 'log.txt'
        if not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        for index, text in enumerate(lines):
            match = re.match(r'epoch (\d+) iteration ', text)
            if match and int(match.group(1)) >= epoch:
                with atomic_path(path) as temporary:
                    temporary.write_text(''.join(lines[:index]))
                return

    def save_config(self, config):
        """Write ``config.yaml`` (the run's full config) into the run folder unless it is there already."""
        path = self.log_dir / 'config.yaml'
        if not path.exists():
            with atomic_path(path) as temporary:
                temporary.write_text(yaml.safe_dump(config, sort_keys=False))

    def log_text(self, text):
        """Append free text (e.g. a fine-tuning weight report) to ``log.txt``."""
        with open(self.log_dir / 'log.txt', 'a') as handle:
            handle.write(text.rstrip('\n') + '\n')

    def log_images(self, epoch, iteration, batch, generated):
        """Visualizer grid to tensorboard ('visualization') and to ``vis/epoch_XXXX.png``; returns the PNG path."""
        grid = self.visualizer.visualize(batch, generated)
        self.writer.add_image('visualization', grid, iteration, dataformats='HWC')
        path = self.log_dir / 'vis' / f'epoch_{epoch:04d}.png'
        with atomic_path(path) as temporary:
            iio.imwrite(temporary, grid)
        return path

    def close(self):
        self.writer.close()
