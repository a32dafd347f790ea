"""Pretrained weights of the learned metrics: where they are looked up, and how a missing file is reported.

Nothing here downloads. A weight file is looked up, in this order, in
    1. ``--weights-dir`` (flat: ``<weights_dir>/<filename>``),
    2. the torch hub cache ``<torch.hub.get_dir()>/checkpoints/<filename>`` (``$TORCH_HOME/hub/checkpoints``,
       default ``~/.cache/torch/hub/checkpoints``), where torchvision, lpips and piq keep their downloads.
When a file is missing the metric is reported as :class:`Unavailable` (reason + exact filename + where to put it),
and the model is never constructed, so no library gets the chance to try the network.

Weight files are data, never code: every state dict is read here with ``torch.load(weights_only=True)`` (tensors and
plain containers only; a pickle that would build other objects is refused and the metric reported unavailable) and
handed to the libraries through :func:`serving_state_dicts`, so torchvision / lpips / piq never unpickle a file
themselves (``torch.hub.load_state_dict_from_url`` would do so with ``weights_only=False``).
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


class WeightsFileError(ValueError):
    """A weight file is unreadable, not a state dict, or not the trusted file."""


def load_state_dict_file(path):
    """Read a state dict with ``torch.load(..., weights_only=True)``: no code in the file can run.

    Args:
        path: str | Path of a ``.pth`` / ``.pt`` file.
    Returns:
        dict name -> tensor (nested dicts of tensors are allowed, as piq's DISTS file has).
    Raises:
        WeightsFileError: the file cannot be read as plain tensors (e.g. a pickle of other objects is refused).
    """
    try:
        state = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsFileError(f'{path} is refused: weight files are loaded as plain tensors only '
                               f'(weights_only=True) and this one is not ({first[:200]})') from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsFileError(f'{path} is not a state dict (a dict of tensors), got {type(state).__name__}')
    return state


@contextlib.contextmanager
def serving_state_dicts(state_dicts):
    """Make ``torch.hub.load_state_dict_from_url`` (and torchvision's copy of it) return these state dicts.

    Inside the block a library asking for ``.../<filename>`` gets ``state_dicts[filename]`` (already loaded with
    :func:`load_state_dict_file`); any other file raises RuntimeError instead of downloading or unpickling.

    Args:
        state_dicts: dict filename -> state dict.
    """
    import torch.hub
    targets = [(torch.hub, 'load_state_dict_from_url')]
    try:
        import torchvision.models._api as tv_api
        targets.append((tv_api, 'load_state_dict_from_url'))
    except ImportError:
        pass

    def serve(url, *args, **kwargs):
        name = os.path.basename(str(url).split('?')[0])
        if name not in state_dicts:
            raise RuntimeError(f'weight file {name} was requested but is not available offline')
        return state_dicts[name]

    saved = [(module, attr, getattr(module, attr)) for module, attr in targets if hasattr(module, attr)]
    for module, attr, _ in saved:
        setattr(module, attr, serve)
    try:
        yield
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)


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
