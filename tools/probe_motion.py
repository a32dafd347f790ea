"""Where is the mouth motion lost? A probe of one checkpoint on real clips (issue 9's diagnosis).

For each clip the first frame is the key-reference frame and every frame is rendered from its own (uncompressed)
keypoints, as ``modules.render.reconstruct``. The MediaPipe Holistic teacher (``evaluation.motion``) measures the
mouth opening (inner-lip distance / inter-ocular distance) of the original and of three images of each frame:

- ``prediction``: the decoded frame;
- ``warped``: the key-reference frame warped by the depth-averaged ``deformation`` (what motion alone gives);
- ``rendered``: the generator's own RGB, where it blends with the warped key frame (``blend_warped_source``:
  ``prediction = mask * warped + (1 - mask) * rendered``; without blending it is the prediction);
- ``oracle``: the key-reference frame warped by the true motion known only on the model's motion grid (the dense
  motion network's resolution, e.g. 16x16 cells at 128x128): optical flow (OpenCV DIS) from each frame to the key
  frame, averaged per cell and upsampled bilinearly. What a decoder that only warps the key frame could show at best
  at that motion resolution;
- ``oracle_full``: the same with the per-pixel flow (what any warp of the key frame could show).

Per image: the mouth amplitude (``evaluation.motion.amplitude_ratio``: 1 = opens and closes as much as the original,
0 = still) and the Pearson correlation with the original's series. Also the blend mask's mean over the frame and
over the lips' box (FaceMesh 0, 17, 61, 291 in the original, grown 25 % per side), and the correlation of the
transmitted keypoints with the mouth: of the keypoints guided to the inner lips (``keypoint_guidance_landmarks``
holding face-mesh 13 and 14), and the best over every keypoint pair (an upper bound of what the keypoints carry).

Command::

    python -m tools.probe_motion CHECKPOINT [--data data/humans256] [--split train] [--names face17,head10]
        [--frames 60]

Names default to the checkpoint config's ``dataset_params.validation_names``. Prints a Markdown table.
"""
import argparse
import sys

import numpy as np
import torch

from evaluation.motion import amplitude_ratio, motion_fidelity, mouth_opening, series_correlation, teacher_landmarks
from modules.model import region_weight_map
from modules.render import frames_to_tensor, render_keypoints, tensor_to_frames
from modules.util import to_pixels
from optical_flow import dis_flow, warp_by_flow
from tools.extract_vertices import FACE_SLICE, to_normalized

#: face-mesh indices of the lips' top, bottom and corners (the box of the mask statistic, grown LIPS_MARGIN per
#: side) and of the inner lips
LIPS_BOX, LIPS_MARGIN, INNER_LIPS = (0, 17, 61, 291), 0.25, (13, 14)
IMAGES = ('prediction', 'warped', 'rendered')
ORACLES = ('oracle', 'oracle_full')


@torch.no_grad()
def render_parts(models, frames, batch_size=4):
    """Render a clip from its first frame and split each output into its parts.

    Args:
        models: modules.build.InferenceModels. frames: (T, H, W, 3) uint8 RGB at the model size.
    Returns:
        dict: 'prediction', 'warped', 'rendered' (T, H, W, 3) uint8; 'mask' (T, H, W) float32 in [0, 1], the warped
        key frame's weight in the prediction (zeros when the generator does not blend); 'kp_driving' (T, K, 3);
        'motion_grid' (h, w): the cells of the dense motion network's mask.
    """
    device = models.device
    source = frames_to_tensor(frames[:1], device)
    driving = (models.kp_detector(frames_to_tensor(frames[i:i + batch_size], device))
               for i in range(0, len(frames), batch_size))
    parts = {name: [] for name in IMAGES + ('mask', 'kp_driving')}
    for kp_driving, out in render_keypoints(models.generator, source, models.kp_detector(source), driving):
        prediction = out['prediction']
        mask = out.get('blend_mask', torch.zeros_like(prediction[:, :1]))
        rendered = (prediction - mask * out['deformed']) / (1 - mask).clamp_min(1e-4)
        for name, value in (('prediction', prediction), ('warped', out['deformed']), ('rendered', rendered)):
            parts[name].append(tensor_to_frames(value).numpy())
        parts['mask'].append(mask[:, 0].float().cpu().numpy())
        parts['kp_driving'].append(kp_driving.float().cpu().numpy())
    result = {name: np.concatenate(values) for name, values in parts.items()}
    result['motion_grid'] = tuple(out['mask'].shape[-2:])
    return result


def oracle_warp(frames, grid=None, flow=None):
    """The key-reference frame ``frames[0]`` backward-warped to every frame by the true motion, known per cell.

    The motion is ``optical_flow.dis_flow(frames, frames[0])`` (pass it as ``flow`` to reuse it), area-averaged over
    ``grid`` cells and upsampled bilinearly (None: per-pixel flow); sampling is bilinear with replicated borders.

    Args:
        frames: (T, H, W, 3) uint8 RGB. grid: (h, w) cells, or None. flow: (T, H, W, 2) or None (computed here).
    Returns:
        (T, H, W, 3) uint8: what a decoder that only warps the key frame could show with motion at that resolution.
    """
    flow = dis_flow(frames, frames[0]) if flow is None else flow
    return warp_by_flow(frames[0], flow, grid)


def probe(models, frames, fps=25.0):
    """The probe's numbers for one clip (module doc).

    Args:
        models: modules.build.InferenceModels. frames: (T, H, W, 3) uint8 RGB at the model size, T >= 3.
        fps: the clip's frame rate (only evaluation.motion's speeds use it; they are not reported).
    Returns:
        dict: 'mouth_std_original'; per image of IMAGES '<image>_amplitude' and '<image>_corr', per image of ORACLES
        '<image>_amplitude' (``oracle_warp`` on the motion grid and per pixel); 'mask_mean',
        'mask_lips' (None without a face); 'lip_keypoints_corr' (None when no keypoint is guided to the inner lips),
        'best_pair_corr' (largest |r| over keypoint pairs' (x, y) distances). Correlations follow
        ``evaluation.motion.series_correlation`` (None: the original mouth does not move; 0: the series is constant).
    """
    original = teacher_landmarks(frames)
    parts = render_parts(models, frames)
    flow = dis_flow(frames, frames[0])                                            # once for both oracles
    parts.update(oracle=oracle_warp(frames, parts['motion_grid'], flow), oracle_full=oracle_warp(frames, flow=flow))
    result = {}
    for name in IMAGES + ORACLES:
        row = motion_fidelity(frames, parts[name], fps, original_landmarks=original)
        result['mouth_std_original'] = row['mouth_std_original']                  # the same for every image
        result[f'{name}_amplitude'] = amplitude_ratio(row['mouth_std_decoded'], row['mouth_std_original'])
        if name in IMAGES:
            result[f'{name}_corr'] = row['mouth_corr']
    result['mask_mean'] = float(parts['mask'].mean())
    height, width = frames.shape[1:3]
    # the lips' box as the region-weighted loss draws it (modules.model.region_weight_map), one per frame
    boxes = region_weight_map(torch.from_numpy(to_normalized(original.points, width, height)),
                              torch.from_numpy(original.found.astype(np.float32)),
                              [[FACE_SLICE.start + i for i in LIPS_BOX]], 1.0, LIPS_MARGIN, (height, width))[:, 0]
    inside = (boxes > boxes.amin((1, 2), keepdim=True)).numpy()                  # (T, H, W); empty without lips
    values = [parts['mask'][t][inside[t]].mean() for t in range(len(frames)) if inside[t].any()]
    result['mask_lips'] = float(np.mean(values)) if values else None
    mouth = mouth_opening(original)
    kp = to_pixels(parts['kp_driving'][..., :2], height, width)                  # (T, K, 2)
    guided = models.config['train_params'].get('keypoint_guidance_landmarks') or []
    lips = [guided.index(FACE_SLICE.start + i) for i in INNER_LIPS if FACE_SLICE.start + i in guided]
    distance = np.linalg.norm(kp[:, lips[0]] - kp[:, lips[1]], axis=-1) if len(lips) == 2 else None
    result['lip_keypoints_corr'] = None if distance is None else series_correlation(mouth, distance)
    pairs = [series_correlation(mouth, np.linalg.norm(kp[:, i] - kp[:, j], axis=-1))
             for i in range(kp.shape[1]) for j in range(i + 1, kp.shape[1])]
    pairs = [abs(r) for r in pairs if r is not None]
    result['best_pair_corr'] = max(pairs) if pairs else None
    return result


COLUMNS = (('mouth_std_original', 'mouth std'), ('prediction_amplitude', 'amplitude decoded'),
           ('prediction_corr', 'r decoded'), ('warped_amplitude', 'amplitude warped'), ('warped_corr', 'r warped'),
           ('rendered_amplitude', 'amplitude rendered'), ('rendered_corr', 'r rendered'),
           ('oracle_amplitude', 'amplitude oracle warp (motion grid)'),
           ('oracle_full_amplitude', 'amplitude oracle warp (per pixel)'),
           ('mask_mean', 'blend mask'), ('mask_lips', 'blend mask at lips'),
           ('lip_keypoints_corr', 'r lip keypoints'), ('best_pair_corr', '|r| best keypoint pair'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint')
    parser.add_argument('--data', default='data/humans256', help='prepared dataset root (default data/humans256)')
    parser.add_argument('--split', default='train', choices=('train', 'test'))
    parser.add_argument('--names', type=lambda text: text.split(','), default=None,
                        help='clip names, comma-separated (default: the config\'s validation_names)')
    parser.add_argument('--frames', type=int, default=60, help='first frames of each clip (default 60)')
    args = parser.parse_args(argv)
    from evaluation.sequences import load_sequences
    from frames_dataset import FramesDataset
    from modules.build import load_inference_models
    try:
        models = load_inference_models(args.checkpoint)
        shape = models.config['dataset_params']['frame_shape']
        names = args.names or models.config['dataset_params'].get('validation_names')
        if not names:
            raise ValueError('no --names given and the checkpoint config has no dataset_params.validation_names')
        dataset = FramesDataset(args.data, frame_shape=shape, is_train=False, split=args.split, names=names,
                                vertices_dir=None)
        print(f'Probe of {args.checkpoint} on {args.split} clips, first {args.frames} frames at {shape[0]}x{shape[1]}'
              '\n\n| clip | ' + ' | '.join(h for _, h in COLUMNS) + ' |\n|---|' + '---|' * len(COLUMNS))
        for seq in load_sequences(dataset, args.frames):
            row = probe(models, seq.frames, float(seq.fps or 25))
            print(f'| {seq.name} | ' + ' | '.join('n/a' if row[k] is None else f'{row[k]:.3f}' if k ==
                                                     'mouth_std_original' else f'{row[k]:.2f}' for k, _ in COLUMNS)
                  + ' |', flush=True)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
