"""Build the networks from one config and load them from a checkpoint for inference.

A checkpoint (``*.pth``, loadable with ``torch.load(..., weights_only=True)``) is a dict with 'config' (the full
config), 'epoch', 'iteration', the state dicts 'kp_detector', 'generator', 'vertex_head' and optionally
'discriminator' and the optimizer states. The codec and the evaluation need nothing but this file.
"""
import hashlib
import json
import os
import pickle
from dataclasses import dataclass

import torch

from modules.config import ConfigError, resolve_config
from modules.discriminator import MultiScaleDiscriminator
from modules.generator import OcclusionAwareGenerator
from modules.keypoint_detector import KPDetector
from modules.vertex_head import VertexHead

#: the networks needed at inference time (the codec's encoder uses only the keypoint detector)
INFERENCE_NETWORKS = ('kp_detector', 'generator', 'vertex_head')


def build_networks(config):
    """Instantiate every network of the config's ``model_params``.

    Args:
        config: the full config dict (see ``config/*.yaml``); checked by :func:`modules.config.resolve_config`,
            the defaults of :data:`modules.config.SCHEMA` fill in what it leaves out.
    Returns:
        dict with 'kp_detector' (:class:`KPDetector`), 'generator' (:class:`OcclusionAwareGenerator`),
        'vertex_head' (:class:`VertexHead`), 'discriminator' (:class:`MultiScaleDiscriminator`), on the CPU.
    Raises:
        ConfigError (a ValueError): an unknown, misspelled or missing key or section (the message names it).
    """
    mp = resolve_config(config)['model_params']
    common = mp['common_params']
    kp_detector = KPDetector(num_kp=common['num_kp'], image_channel=common['image_channel'],
                             **mp['kp_detector_params'])
    generator = OcclusionAwareGenerator(**mp['generator_params'], **common,
                                        dense_motion_params=mp['dense_motion_params'])
    vertex_head = VertexHead(generator.refine_channels, **mp['vertex_head_params'])
    discriminator = MultiScaleDiscriminator(**mp['discriminator_params'])
    return {'kp_detector': kp_detector, 'generator': generator, 'vertex_head': vertex_head,
            'discriminator': discriminator}


def weights_id(networks, config=None):
    """8-byte identifier of the inference model: the first 8 bytes of a SHA-256 over the names, shapes and
    float32 little-endian values of every parameter and buffer of kp_detector, generator and vertex_head, and,
    when ``config`` is given, over the parts of the config that decide what the decoder computes
    (``model_params`` and ``dataset_params.frame_shape``, as canonical JSON), so the same weights under another
    config get another id.

    Args:
        networks: dict holding those three modules (or their state dicts).
        config: the checkpoint's config dict, or None (weights only).
    Returns:
        bytes of length 8 (written into the ``.s2d`` header, checked by the decoder).
    """
    digest = hashlib.sha256()
    if config is not None:
        covered = {'model_params': config.get('model_params'),
                   'frame_shape': (config.get('dataset_params') or {}).get('frame_shape')}
        digest.update(b'config:' + json.dumps(covered, sort_keys=True, default=repr).encode() + b'\n')
    for name in INFERENCE_NETWORKS:
        net = networks[name]
        state = net.state_dict() if hasattr(net, 'state_dict') else net
        for key in sorted(state):
            tensor = state[key].detach().to('cpu', torch.float32).contiguous()
            digest.update(f"{name}.{key}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().astype('<f4').tobytes())
    return digest.digest()[:8]


@dataclass
class InferenceModels:
    """Networks in eval mode on one device, with the config they came from.

    Attributes: config (dict), kp_detector, generator, vertex_head (nn.Module), weights_id (8 bytes),
    device (torch.device), epoch (int).
    """
    config: dict
    kp_detector: torch.nn.Module
    generator: torch.nn.Module
    vertex_head: torch.nn.Module
    weights_id: bytes
    device: torch.device
    epoch: int


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, refused (pickled objects) or not a Sparse2Dense checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the given path."""


#: entries a caller may require of a checkpoint, with their type; any other name must be a dict (a state dict,
#: an optimizer state, 'validation')
_ENTRY_TYPES = {'epoch': int, 'iteration': int}

#: what to do when a checkpoint lacks what the caller needs
_USE_A_TRAINING_CHECKPOINT = ("give a checkpoint written by `python run.py --mode train` (log/<run>/checkpoint.pth "
                              "or best.pth, which hold them all) or checkpoints/humans256-cpu.pth")


def _to_device(value, device):
    """``value`` with every tensor in it (nested dicts, lists, tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    return value


def load_checkpoint(checkpoint_path, require=(), map_location='cpu'):
    """The one checkpoint reader and validator: ``torch.load(..., weights_only=True)`` with one clear error for
    every bad file, in one style: ``<file>: <what is wrong>; <what to do>``.

    Args:
        checkpoint_path: path (str or Path) of a ``*.pth`` written by ``run.py`` or tools/export_checkpoint.py.
        require: names of the entries the caller needs besides 'config' (always checked), e.g.
            :data:`INFERENCE_NETWORKS` to build the networks, ``('epoch', ...)`` to resume training. 'epoch' and
            'iteration' must be ints, any other entry a dict (a state dict, an optimizer state, 'validation').
        map_location: device the tensors are moved to after reading (read on the CPU first, so a bad device is
            not reported as a bad file): 'cpu', 'cuda:0', a torch.device ...
    Returns:
        the checkpoint dict (tensors on ``map_location``), holding a valid dict 'config' and every required entry.
    Raises:
        CheckpointNotFoundError (a FileNotFoundError): no such file.
        CheckpointError (a ValueError): a directory, an empty or truncated file, another format, a pickle of
            Python objects (refused: loading it would run code from the file), a dict without a config or a
            required entry, or a config with an unknown or missing key (see :func:`modules.config.resolve_config`).
    """
    path = str(checkpoint_path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file; give the *.pth file itself")
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"{path}: checkpoint does not exist; train one with "
                                      f"`python run.py --mode train` or use checkpoints/humans256-cpu.pth")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); copy or download it again "
                              f"(an interrupted copy?)")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if 'weights only' in str(err).lower() or 'weights_only' in str(err):
            raise CheckpointError(
                f"{path}: checkpoint refused: it pickles Python objects other than tensors and plain containers, "
                f"and unpickling them could run code from the file; re-save a trusted copy's state dicts "
                f"(e.g. with tools/export_checkpoint.py), only tensor-only checkpoints are loaded") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle: {str(err)[:120]}); "
                              f"{_USE_A_TRAINING_CHECKPOINT}") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, OSError, ... for truncated or foreign files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"{path}: checkpoint cannot be read: truncated, corrupt or not a PyTorch checkpoint "
                              f"({type(err).__name__}: {first}); copy it again or "
                              f"{_USE_A_TRAINING_CHECKPOINT}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a Sparse2Dense checkpoint: it holds a {type(ckpt).__name__}; "
                              f"{_USE_A_TRAINING_CHECKPOINT}")
    missing = [name for name in ('config',) + tuple(require)
               if not isinstance(ckpt.get(name), _ENTRY_TYPES.get(name, dict))]
    if missing:
        raise CheckpointError(f"{path}: not a Sparse2Dense checkpoint: missing {missing}; "
                              f"{_USE_A_TRAINING_CHECKPOINT}")
    try:
        resolve_config(ckpt['config'])
    except ConfigError as err:
        raise CheckpointError(f"{path}: holds an invalid config: {err}; re-export the run with a corrected "
                              f"config (tools/export_checkpoint.py --config)") from None
    if map_location not in (None, 'cpu', torch.device('cpu')):
        ckpt = _to_device(ckpt, map_location)
    return ckpt


def load_inference_models(checkpoint_path, device='cpu'):
    """Load kp_detector, generator and vertex_head from a training or shipped checkpoint.

    Args:
        checkpoint_path: path to a ``*.pth`` written by ``run.py`` (or ``tools``' inference export).
        device: 'cpu', 'cuda', 'cuda:1' ... or a torch.device.
    Returns:
        :class:`InferenceModels`.
    Raises:
        CheckpointNotFoundError (a FileNotFoundError): no such file.
        CheckpointError (a ValueError): the file is unreadable or refused (see :func:`load_checkpoint`), not a
            Sparse2Dense checkpoint (missing 'config' or a network's state dict), or its weights do not fit the
            networks its config describes.
    """
    ckpt = load_checkpoint(checkpoint_path, require=INFERENCE_NETWORKS)
    try:
        networks = build_networks(ckpt['config'])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{checkpoint_path}: its config does not describe the networks: {err}; "
                              f"{_USE_A_TRAINING_CHECKPOINT}") from None
    device = torch.device(device)
    for name in INFERENCE_NETWORKS:
        try:
            networks[name].load_state_dict(ckpt[name])
        except (RuntimeError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{checkpoint_path}: {name} weights do not match its config: "
                                  f"{str(err)[:300]}; export the run's own config with its weights "
                                  f"(tools/export_checkpoint.py)") from None
        networks[name].to(device).eval()
    return InferenceModels(config=ckpt['config'], kp_detector=networks['kp_detector'],
                           generator=networks['generator'], vertex_head=networks['vertex_head'],
                           weights_id=weights_id(networks, ckpt['config']), device=device,
                           epoch=ckpt['epoch'] if isinstance(ckpt.get('epoch'), int) else -1)
