"""Pretrained weights of the learned metrics: how a missing or refused file is reported, and how the libraries get
the files without downloading or unpickling them.

Nothing here downloads. Files are looked up and read by :mod:`modules.weights` (``--weights-dir``, then the torch hub
cache; the one reader, ``torch.load(weights_only=True)``). When a file is missing the metric is reported as
:class:`Unavailable` (reason + exact filename + where to put it, in :func:`modules.weights.not_found_message`'s
words), and the model is never constructed, so no library gets the chance to try the network.

State dicts read by :func:`modules.weights.load_state_dict_file` are handed to the libraries through
:func:`serving_state_dicts`, so torchvision / lpips / piq never unpickle a file themselves
(``torch.hub.load_state_dict_from_url`` would do so with ``weights_only=False``).
"""
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.weights import find_weights, not_found_message, search_path


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot be computed here, with the reason and what would make it available.

    Attributes:
        metric: metric name (e.g. 'lpips_alex').
        reason: why it is unavailable (one sentence).
        missing: filenames that are missing (exact names, see :data:`modules.weights.KNOWN_FILES`).
        search_path: directories that were searched, in order; put the files in any of them.
    """
    metric: str
    reason: str
    missing: tuple = ()
    search_path: tuple = ()

    def __str__(self):
        text = f"{self.metric}: unavailable ({self.reason})"
        if self.missing:
            text += f": {not_found_message(self.missing, self.search_path)}"
        return text


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
def serving_state_dicts(state_dicts):
    """Make ``torch.hub.load_state_dict_from_url`` (and torchvision's copy of it) return these state dicts.

    Inside the block a library asking for ``.../<filename>`` gets ``state_dicts[filename]`` (already loaded with
    :func:`modules.weights.load_state_dict_file`); any other file raises RuntimeError instead of downloading or
    unpickling.

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
    from disk: the file is present, so they never download. On exit torch.hub is left as it was: following
    ``$TORCH_HOME`` again unless a directory had been set with ``torch.hub.set_dir`` before.

    Args:
        paths: iterable of existing Paths (their basenames are the names the libraries expect).
    """
    previous = torch.hub._hub_dir       # None = follow $TORCH_HOME; set_dir(get_dir()) would freeze today's value
    with tempfile.TemporaryDirectory(prefix='s2d-hub-') as tmp:
        checkpoints = Path(tmp) / 'checkpoints'
        checkpoints.mkdir()
        for path in paths:
            os.symlink(Path(path).resolve(), checkpoints / Path(path).name)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub._hub_dir = previous
