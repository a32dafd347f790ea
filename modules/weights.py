"""Pretrained weight files (the perceptual loss's VGG19, the learned metrics' trunks): where they are looked up, the
one reader, and the one "not found" message. Nothing here downloads.

A weight file is looked up, in this order, in
    1. ``weights_dir`` when the caller has one (``--weights-dir`` of the evaluation; flat: ``<weights_dir>/<name>``),
    2. the torch hub cache ``<torch.hub.get_dir()>/checkpoints/<name>`` (``$TORCH_HOME/hub/checkpoints``, default
       ``~/.cache/torch/hub/checkpoints``), where torchvision, lpips and piq keep their downloads.

Weight files are data, never code: every state dict is read by :func:`load_state_dict_file` with
``torch.load(weights_only=True)`` (tensors and plain containers only; a pickle that would build other objects is
refused). Used by :class:`modules.model.VGG19Features` and by evaluation/weights.py.
"""
from pathlib import Path

import torch

#: filename -> what it is (the files the upstream libraries load by these exact names)
KNOWN_FILES = {
    'vgg19-dcbb9e9d.pth': "torchvision VGG19 ImageNet weights (VGG19_Weights.IMAGENET1K_V1), perceptual loss",
    'alexnet-owt-7be5be79.pth': "torchvision AlexNet ImageNet weights (AlexNet_Weights.IMAGENET1K_V1), "
                                "LPIPS-Alex trunk",
    'vgg16-397923af.pth': "torchvision VGG16 ImageNet weights (VGG16_Weights.IMAGENET1K_V1), "
                          "LPIPS-VGG and DISTS trunk",
    'dists_weights.pt': "DISTS alpha/beta layer weights as released with piq v0.4.1 (loaded by piq.DISTS)",
    'i3d_torchscript.pt': "I3D (Inception-v1, Kinetics-400) TorchScript export of the TF-Hub FVD network, "
                          "as distributed with StyleGAN-V's FVD code",
}


class WeightsFileError(ValueError):
    """A weight file is unreadable, not a state dict, or not the trusted file."""


class WeightsNotFoundError(FileNotFoundError):
    """A weight file is in none of the searched folders (the message names the file and the folders)."""


def search_path(weights_dir=None):
    """Folders searched for weight files, in order: ``weights_dir`` (if given), then the torch hub cache.

    Args:
        weights_dir: str | Path | None, e.g. the evaluation's ``--weights-dir``.
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


def not_found_message(filenames, dirs):
    """The one "not found" message: ``file not found: put <file> [<what it is>] in one of: <dirs>`` (``files``
    and ``<file> [...]; <file> [...]`` for several).

    Args:
        filenames: the missing filenames (exact names; :data:`KNOWN_FILES` describes the known ones).
        dirs: the folders that were searched (any of them will do).
    Returns:
        str (one line).
    """
    filenames = list(filenames)
    wanted = '; '.join(f"{name} [{KNOWN_FILES.get(name, 'weight file')}]" for name in filenames)
    return (f"{'file' if len(filenames) == 1 else 'files'} not found: put {wanted} in one of: "
            f"{', '.join(str(d) for d in dirs)}")


def load_state_dict_file(path):
    """The one reader of weight files: ``torch.load(..., weights_only=True)``, so no code in the file can run.

    Args:
        path: str | Path of a ``.pth`` / ``.pt`` file.
    Returns:
        dict name -> tensor (on the CPU; nested dicts of tensors are allowed, as piq's DISTS file has).
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


def read_weights(filename, weights_dir=None):
    """Find ``filename`` (see :func:`search_path`) and read it with :func:`load_state_dict_file`.

    Args:
        filename: exact filename, e.g. 'vgg19-dcbb9e9d.pth'.
        weights_dir: str | Path | None, searched before the torch hub cache.
    Returns:
        the state dict (tensors on the CPU).
    Raises:
        WeightsNotFoundError (a FileNotFoundError): in no searched folder (message: :func:`not_found_message`).
        WeightsFileError (a ValueError): found but refused or not a state dict.
    """
    found, missing = find_weights([filename], weights_dir)
    if missing:
        raise WeightsNotFoundError(not_found_message(missing, search_path(weights_dir)))
    return load_state_dict_file(found[filename])
