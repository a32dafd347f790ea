"""Build the networks from one config and load them from a checkpoint for inference.

A checkpoint (``*.pth``, loadable with ``torch.load(..., weights_only=True)``) is a dict with 'config' (the full
config), 'epoch', 'iteration', the state dicts 'kp_detector', 'generator', 'vertex_head' and optionally
'discriminator' and the optimizer states. The codec and the evaluation need nothing but this file.
"""
import hashlib
import json
import os
from dataclasses import dataclass

import torch

from modules.discriminator import MultiScaleDiscriminator
from modules.generator import OcclusionAwareGenerator
from modules.keypoint_detector import KPDetector
from modules.vertex_head import VertexHead

#: the networks needed at inference time (the codec's encoder uses only the keypoint detector)
INFERENCE_NETWORKS = ('kp_detector', 'generator', 'vertex_head')


def build_networks(config):
    """Instantiate every network of the config's ``model_params``.

    Args:
        config: the full config dict (see ``config/*.yaml``).
    Returns:
        dict with 'kp_detector' (:class:`KPDetector`), 'generator' (:class:`OcclusionAwareGenerator`),
        'vertex_head' (:class:`VertexHead`), 'discriminator' (:class:`MultiScaleDiscriminator`), on the CPU.
    Raises:
        KeyError: a required section is missing from the config (the message names it).
    """
    try:
        mp = config['model_params']
        common = mp['common_params']
        kp_detector = KPDetector(**mp['kp_detector_params'], **common)
        generator = OcclusionAwareGenerator(**mp['generator_params'], **common,
                                            dense_motion_params=mp['dense_motion_params'])
        vertex_head = VertexHead(generator.refine_channels, **mp['vertex_head_params'])
        discriminator = MultiScaleDiscriminator(**mp['discriminator_params'])
    except KeyError as err:
        raise KeyError(f"config is missing model_params section or key {err}; compare with config/ted384.yaml") \
            from None
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


def load_inference_models(checkpoint_path, device='cpu'):
    """Load kp_detector, generator and vertex_head from a training or shipped checkpoint.

    Args:
        checkpoint_path: path to a ``*.pth`` written by ``run.py`` (or ``tools``' inference export).
        device: 'cpu', 'cuda', 'cuda:1' ... or a torch.device.
    Returns:
        :class:`InferenceModels`.
    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a Sparse2Dense checkpoint (missing 'config' or a network's state dict), or
            its weights do not fit the networks its config describes.
    """
    if not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"checkpoint {checkpoint_path} does not exist; train one with "
                                f"`python run.py --mode train` or use checkpoints/humans256-cpu.pth")
    ckpt = torch.load(checkpoint_path, map_location='cpu', weights_only=True)
    missing = [k for k in ('config',) + INFERENCE_NETWORKS if k not in ckpt]
    if missing:
        raise ValueError(f"{checkpoint_path} is not a Sparse2Dense checkpoint: missing {missing}")
    networks = build_networks(ckpt['config'])
    device = torch.device(device)
    for name in INFERENCE_NETWORKS:
        try:
            networks[name].load_state_dict(ckpt[name])
        except RuntimeError as err:
            raise ValueError(f"{checkpoint_path}: {name} weights do not match its config: {err}") from None
        networks[name].to(device).eval()
    return InferenceModels(config=ckpt['config'], kp_detector=networks['kp_detector'],
                           generator=networks['generator'], vertex_head=networks['vertex_head'],
                           weights_id=weights_id(networks, ckpt['config']), device=device, epoch=int(ckpt.get('epoch', -1)))
