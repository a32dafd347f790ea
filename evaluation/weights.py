"""Pretrained weights of the learned metrics: where they are looked up, and how a missing file is reported.

Nothing here downloads. A weight file is looked up, in this order, in
    1. ``--weights-dir`` (flat: ``<weights_dir>/<filename>``),
    2. the torch hub cache ``<torch.hub.get_dir()>/checkpoints/<filename>`` (``$TORCH_HOME/hub/checkpoints``,
       default ``~/.cache/torch/hub/checkpoints``), where torchvision, lpips and piq keep their downloads.
When a file is missing the metric is reported as :class:`Unavailable` (reason + exact filename + where to put it),
and the model is never constructed, so no library gets the chance to try the network.
"""
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

# filename -> what it is (the checkpoints the upstream libraries load by these exact names).
KNOWN_FILES = {
    'alexnet-owt-7be5be79.pth': "torchvision AlexNet ImageNet weights (AlexNet_Weights.IMAGENET1K_V1), "
                                "LPIPS-Alex trunk",
    'vgg16-397923af.pth': "torchvision VGG16 ImageNet weights (VGG16_Weights.IMAGENET1K_V1), "
                          "LPIPS-VGG and DISTS trunk",
    'dists_weights.pt': "DISTS alpha/beta layer weights as released with piq v0.4.1 (loaded by piq.DISTS)",
    'i3d_torchscript.pt': "I3D (Inception-v1, Kinetics-400) TorchScript export of the TF-Hub FVD network, "
                          "as distributed with StyleGAN-V's FVD code",
}


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot be computed here, with the reason and what would make it available.

    Attributes:
        metric: metric name (e.g. 'lpips_alex').
        reason: why it is unavailable (one sentence).
        missing: filenames that are missing (exact names, see KNOWN_FILES).
        search_path: directories that were searched, in order; put the files in any of them.
    """
    metric: str
    reason: str
    missing: tuple = ()
    search_path: tuple = ()

    def __str__(self):
        text = f"{self.metric}: unavailable ({self.reason})"
        if self.missing:
            wanted = '; '.join(f"{name} [{KNOWN_FILES.get(name, 'weight file')}]" for name in self.missing)
            text += f". Needs {wanted}. Put the file(s) in one of: {', '.join(self.search_path)}"
        return text


def search_path(weights_dir=None):
    """Directories searched for weight files, in order: ``weights_dir`` (if given), then the torch hub cache.

    Args:
        weights_dir: str | Path | None, the ``--weights-dir`` option.
    Returns:
        list[Path].
    """
    dirs = [Path(weights_dir)] if weights_dir else []
    dirs.append(Path(torch.hub.get_dir()) / 'checkpoints')
    return dirs


def find_weights(filenames, weights_dir=None):
    """Locate weight files without touching the network.

    Args:
        filenames: iterable of exact filenames (e.g. 'vgg16-397923af.pth').
        weights_dir: str | Path | None, searched before the torch hub cache.
    Returns:
        (found, missing): dict filename -> Path of the files found, list of the missing filenames.
    """
    found, missing = {}, []
    for name in filenames:
        hit = next((d / name for d in search_path(weights_dir) if (d / name).is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing


def missing_weights(metric, filenames, weights_dir=None):
    """Unavailable record for ``metric`` if any of ``filenames`` is missing, else None.

    Args:
        metric: metric name.
        filenames: the files the metric needs.
        weights_dir: str | Path | None.
    Returns:
        Unavailable | None.
    """
    _, missing = find_weights(filenames, weights_dir)
    if not missing:
        return None
    return Unavailable(metric, 'pretrained weights not found; they cannot be downloaded on this machine',
                       tuple(missing), tuple(str(d) for d in search_path(weights_dir)))


@contextlib.contextmanager
def hub_dir_holding(paths):
    """Point torch.hub at a temporary directory whose ``checkpoints/`` holds (symlinks to) exactly ``paths``.

    Libraries that call ``torch.hub.load_state_dict_from_url`` (torchvision, lpips, piq) then load these files
    from disk: the file is present, so they never download. The previous hub dir is restored on exit.

    Args:
        paths: iterable of existing Paths (their basenames are the names the libraries expect).
    """
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix='s2d-hub-') as tmp:
        checkpoints = Path(tmp) / 'checkpoints'
        checkpoints.mkdir()
        for path in paths:
            os.symlink(Path(path).resolve(), checkpoints / Path(path).name)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)
