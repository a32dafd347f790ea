"""Learned full-reference image metrics of the paper: LPIPS (VGG and Alex trunks, lpips package) and DISTS (piq).

Weights are never downloaded (see evaluation/weights.py): the files are located first and the model is built only
when all of them exist; otherwise :func:`build_learned_metric` returns an :class:`~evaluation.weights.Unavailable`.
"""
import contextlib
import io
import warnings
from pathlib import Path

import torch

from evaluation.weights import Unavailable, hub_dir_holding, missing_weights, serving_state_dicts
from modules.weights import WeightsFileError, find_weights, load_state_dict_file

# metric -> (trunk weight files, description)
LEARNED_METRICS = {
    'lpips_alex': (('alexnet-owt-7be5be79.pth',), 'LPIPS v0.1, AlexNet trunk (lpips package, Zhang et al. 2018)'),
    'lpips_vgg': (('vgg16-397923af.pth',), 'LPIPS v0.1, VGG16 trunk (lpips package, Zhang et al. 2018)'),
    'dists': (('vgg16-397923af.pth', 'dists_weights.pt'),
              'DISTS (piq.DISTS, Ding et al. 2020; piq downsamples frames larger than 256 px to 256 px)'),
}


class LearnedDistance:
    """A learned distance between two image batches: lower is better, 0 for identical images.

    Call with x, y: (B, 3, H, W) float in [0, 1] on the metric's device; returns (B,) float tensor (unitless).
    """

    def __init__(self, name, network, forward):
        self.name = name
        self.network = network
        self._forward = forward

    @torch.no_grad()
    def __call__(self, x, y):
        return self._forward(self.network, x, y).reshape(x.shape[0])


def _lpips_linear_layers(trunk):
    """Path of the LPIPS linear-layer weights shipped inside the lpips package (v0.1), for trunk 'alex' | 'vgg'."""
    import lpips
    return Path(lpips.__file__).parent / 'weights' / 'v0.1' / f'{trunk}.pth'


def build_learned_metric(name, device, weights_dir=None):
    """Build one learned metric without any network access.

    Args:
        name: 'lpips_alex' | 'lpips_vgg' | 'dists'.
        device: torch device string or torch.device.
        weights_dir: str | Path | None, searched before the torch hub cache.
    Returns:
        LearnedDistance (eval mode, on ``device``) or Unavailable (what is missing and where to put it).
    Raises:
        ValueError: unknown metric name.
    """
    if name not in LEARNED_METRICS:
        raise ValueError(f"unknown learned metric {name!r}; choose one of {sorted(LEARNED_METRICS)}")
    files, _ = LEARNED_METRICS[name]
    unavailable = missing_weights(name, files, weights_dir)
    if unavailable is not None:
        return unavailable
    found, _ = find_weights(files, weights_dir)
    try:    # weights_only=True: a weight file is data; one that would run code is refused here
        state_dicts = {filename: load_state_dict_file(path) for filename, path in found.items()}
    except WeightsFileError as err:
        return Unavailable(name, str(err))
    # The libraries print set-up messages and emit torchvision's 'pretrained' deprecation warnings: keep quiet.
    with hub_dir_holding(found.values()), serving_state_dicts(state_dicts), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        if name == 'dists':
            import piq
            network = piq.DISTS(reduction='none')
            forward = _dists_forward
        else:
            import lpips
            trunk = name.split('_')[1]
            if not _lpips_linear_layers(trunk).is_file():
                return Unavailable(name, f'the lpips package install lacks {_lpips_linear_layers(trunk)}; '
                                         'reinstall lpips')
            network = lpips.LPIPS(net=trunk, verbose=False)
            forward = _lpips_forward
    return LearnedDistance(name, network.eval().to(device), forward)


def _lpips_forward(network, x, y):
    return network(x, y, normalize=True)      # normalize=True: inputs in [0, 1]


def _dists_forward(network, x, y):
    return network(x, y)                      # piq.DISTS returns the DISTS distance for inputs in [0, 1]
