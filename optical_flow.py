"""Dense optical flow between frames (OpenCV DIS), the teacher of the ``motion_flow`` loss and of the oracle warps.

The generator warps the key-reference frame backwards: for a pixel ``p`` of the driving frame, ``deformation(p)`` is
where to read the key frame. :func:`dis_flow` estimates exactly that motion from two real frames (DIS, Kroeger et
al., ECCV 2016, OpenCV's ``DISOpticalFlow``, medium preset, on grey levels); :func:`consistency_mask` keeps only the
pixels where the forward and backward flows agree (occlusions and failures drop out; Sundaram, Brox and Keutzer,
ECCV 2010, alpha 0.01, beta 0.5 px^2).
"""
import cv2
import numpy as np


def _grey(frame):
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def dis_flow(frames, reference):
    """Backward optical flow from every frame to ``reference``.

    Args:
        frames: (T, H, W, 3) uint8 RGB. reference: (H, W, 3) uint8 RGB (e.g. the key-reference frame).
    Returns:
        (T, H, W, 2) float32 pixel offsets (x, y): frame t at pixel p looks like ``reference`` at p + flow[t, p].
    Raises:
        ValueError: frames that are not uint8 RGB, or of another size than ``reference``.
    """
    if frames.shape[1:] != reference.shape:
        raise ValueError(f"frames {frames.shape[1:]} and reference {reference.shape} differ in size")
    estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    target = _grey(reference)
    return np.stack([estimator.calc(_grey(frame), target, None) for frame in frames])


def consistency_mask(forward, backward, alpha=0.01, beta=0.5):
    """Forward-backward consistency of a flow pair (Sundaram et al. 2010).

    Args:
        forward: (H, W, 2) pixel offsets from frame A to frame B (A at p looks like B at p + forward[p]).
        backward: (H, W, 2) pixel offsets from B to A.
        alpha, beta: the test |f + b'|^2 < alpha (|f|^2 + |b'|^2) + beta, with b' = backward read at p + f (px^2).
    Returns:
        (H, W) float32, 1 where the two flows agree (and p + f lies in the frame), else 0.
    """
    height, width = forward.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = x + forward[..., 0], y + forward[..., 1]
    back = cv2.remap(backward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = ((forward + back) ** 2).sum(-1)
    bound = alpha * ((forward ** 2).sum(-1) + (back ** 2).sum(-1)) + beta
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return ((error < bound) & inside).astype(np.float32)


def flow_target(source, driving):
    """The motion the generator should find for one (source, driving) pair, in its own units.

    Args:
        source, driving: (H, W, 3) uint8 RGB (H, W > 1).
    Returns:
        (offsets (2, H, W) float32: the backward flow from ``driving`` to ``source`` in normalised coordinates,
        x = 2 px / (W - 1) as :func:`modules.util.make_coordinate_grid`; so identity grid + offsets is the sampling
        grid of the source; confidence (1, H, W) float32 in {0, 1} from :func:`consistency_mask`).
    """
    height, width = source.shape[:2]
    backward = dis_flow(driving[None], source)[0]
    forward = dis_flow(source[None], driving)[0]
    confidence = consistency_mask(backward, forward)
    offsets = backward * np.array([2 / (width - 1), 2 / (height - 1)], dtype=np.float32)
    return np.ascontiguousarray(offsets.transpose(2, 0, 1)), confidence[None]


def warp_by_flow(image, flow, grid=None):
    """Backward-warp one image by each of a series of flows (bilinear, replicated borders).

    Args:
        image: (H, W, 3) uint8, e.g. the key-reference frame.
        flow: (T, H, W, 2) pixel offsets (x, y) as :func:`dis_flow` returns: output t at p is ``image`` at
            p + flow[t, p].
        grid: (h, w) cells: the flow is first area-averaged over them and upsampled bilinearly, i.e. motion known
            only at that resolution (a dense motion network's grid); None keeps the per-pixel flow.
    Returns:
        (T, H, W, 3) uint8.
    """
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    warped = []
    for offsets in flow:
        if grid is not None:
            cells = cv2.resize(offsets, (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
            offsets = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR)
        warped.append(cv2.remap(image, x + offsets[..., 0], y + offsets[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE))
    return np.stack(warped)
