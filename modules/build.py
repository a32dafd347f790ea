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


def load_checkpoint(checkpoint_path):
    """The one checkpoint reader: ``torch.load(..., weights_only=True)`` with one clear error for every bad file.

    Args:
        checkpoint_path: path of a ``*.pth`` written by ``run.py`` or tools/export_checkpoint.py.
    Returns:
        the checkpoint dict (on the CPU), holding at least a dict 'config'.
    Raises:
        CheckpointNotFoundError (a FileNotFoundError): no such file.
        CheckpointError (a ValueError): a directory, an empty or truncated file, another format, a pickle of
            Python objects (refused: loading it would run code from the file), a dict without a config, or a
            config with an unknown or missing key (see :func:`modules.config.resolve_config`).
    """
    path = str(checkpoint_path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist; train one with "
                                      f"`python run.py --mode train` or use checkpoints/humans256-cpu.pth")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted copy or download?")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if 'weights only' in str(err).lower() or 'weights_only' in str(err):
            raise CheckpointError(
                f"checkpoint {path} is refused: it pickles Python objects other than tensors and plain containers, "
                f"and unpickling them could run code from the file; only tensor-only checkpoints are loaded "
                f"(re-save a trusted copy's state dicts, e.g. with tools/export_checkpoint.py)") from None
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (unreadable pickle: "
                              f"{str(err)[:120]})") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, OSError, ... for truncated or foreign files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"checkpoint {path} cannot be read: truncated, corrupt or not a PyTorch "
                              f"checkpoint ({type(err).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('config'), dict):
        raise CheckpointError(f"{path} is not a Sparse2Dense checkpoint: "
                              + ("missing ['config']" if isinstance(ckpt, dict) else f"it holds a {type(ckpt).__name__}"))
    try:
        resolve_config(ckpt['config'])
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid config: {err}") from None
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
    ckpt = load_checkpoint(checkpoint_path)
    missing = [k for k in INFERENCE_NETWORKS if not isinstance(ckpt.get(k), dict)]
    if missing:
        raise CheckpointError(f"{checkpoint_path} is not a Sparse2Dense checkpoint: missing {missing}")
    try:
        networks = build_networks(ckpt['config'])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{checkpoint_path}: its config does not describe the networks: {err}") from None
    device = torch.device(device)
    for name in INFERENCE_NETWORKS:
        try:
            networks[name].load_state_dict(ckpt[name])
        except (RuntimeError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{checkpoint_path}: {name} weights do not match its config: "
                                  f"{str(err)[:300]}") from None
        networks[name].to(device).eval()
    return InferenceModels(config=ckpt['config'], kp_detector=networks['kp_detector'],
                           generator=networks['generator'], vertex_head=networks['vertex_head'],
                           weights_id=weights_id(networks, ckpt['config']), device=device,
                           epoch=ckpt['epoch'] if isinstance(ckpt.get('epoch'), int) else -1)
