"""Sparse2Dense training loop (paper sec. 2.4; FOMM-style), single process or DistributedDataParallel.

``train(config, log_dir, device, ...)`` runs in every process. Each iteration: the generator-side losses
(``modules.model.GeneratorFullModel``) update the generator + vertex head and the keypoint detector (two Adam
optimizers), then the discriminator loss updates the discriminator (a third Adam). Learning rates drop by 10x at
``train_params.epoch_milestones`` (MultiStepLR). After every epoch rank 0 validates on the test split (reconstruction
L1 / PSNR, first frame as source), logs, and writes ``<log_dir>/checkpoint.pth`` every ``checkpoint_freq`` epochs and
at the end, and ``best.pth`` whenever the validation L1 improves.

Resume: a checkpoint whose config equals the run's config (``train_params.num_epochs`` may differ) continues at the
next epoch with its optimizers. Fine-tune: any other config loads only the matching weights (report in
``log.txt``) and starts at epoch 0 with fresh optimizers.
"""
import copy
import logging
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from evaluation.metrics import psnr_rgb
from frames_dataset import DatasetRepeater, FramesDataset, VideoReadError, entry_stem, group_weights
from logger import (CHECKPOINT_NETWORKS, Logger, format_weight_report, load_checkpoint, load_matching_weights,
                    save_checkpoint)
from modules.build import build_networks
from modules.config import ConfigError, resolve_config
from modules.model import DiscriminatorFullModel, GeneratorFullModel, flow_endpoint_error, keypoint_flow_error
from modules.render import render_keypoints, tensor_to_frames
from modules.util import make_coordinate_grid
from optical_flow import flow_target
from sync_batchnorm import synchronize_batchnorm

LOG = logging.getLogger(__name__)

#: optimizer name -> networks it updates
OPTIMIZED_NETWORKS = {'generator': ('generator', 'vertex_head'), 'kp_detector': ('kp_detector',),
                      'discriminator': ('discriminator',)}


#: settings that do not change what is trained: a config differing only in these still resumes a run
RESUME_INDEPENDENT = {'train_params': ('num_epochs', 'dataloader_workers'), 'dataset_params': ('cache_frames',)}
RESUME_INDEPENDENT_SECTIONS = ('codec_params', 'rd_params', 'visualizer_params')


def is_resume(config, checkpoint_config):
    """True when ``config`` continues the run of ``checkpoint_config``: equal except the settings that do not change
    what is trained (``RESUME_INDEPENDENT``: epoch count, data-loading speed; codec, evaluation and visualisation
    sections)."""
    def comparable(cfg):
        cfg = copy.deepcopy(cfg)
        for section, keys in RESUME_INDEPENDENT.items():
            for key in keys:
                cfg.get(section, {}).pop(key, None)
        for section in RESUME_INDEPENDENT_SECTIONS:
            cfg.pop(section, None)
        return cfg
    return comparable(config) == comparable(checkpoint_config)


def resolve_train_params(config):
    """The config's ``train_params`` with the defaults of ``modules.config.SCHEMA`` filled in.
    Raises ConfigError (a ValueError) naming an unknown or missing key, or a missing ``train_params`` section."""
    if not isinstance(config, dict) or 'train_params' not in config:
        raise ConfigError("config has no train_params section; compare with config/ted384.yaml")
    return resolve_config(config)['train_params']


def make_datasets(config):
    """(training FramesDataset wrapped in DatasetRepeater, validation FramesDataset) from the config.

    The validation set is ``dataset_params.validation_names``, clips held out of the training split (models are
    selected on it, never on the test split). Without that key it falls back to the test split, with a warning.
    ``dataset_params.sampling_groups`` (optional) draws each group of training clips equally often
    (``frames_dataset.group_weights``). Training items carry the pair's optical flow when
    ``loss_weights.motion_flow`` or ``keypoint_flow`` > 0.
    """
    params = dict(config['dataset_params'])
    held_out = params.pop('validation_names', None)
    sampling_groups = params.pop('sampling_groups', None)
    num_vertices = config['model_params']['vertex_head_params']['num_vertices']
    weights = resolve_train_params(config)['loss_weights']
    optical_flow = bool(weights['motion_flow'] or weights['keypoint_flow'])
    train_set = FramesDataset(is_train=True, num_vertices=num_vertices, exclude_names=tuple(held_out or ()),
                              optical_flow=optical_flow, **params)
    params.pop('augmentation_params', None)
    if held_out:
        validation_set = FramesDataset(is_train=False, num_vertices=num_vertices, split='train', names=held_out,
                                       **params)
    else:
        LOG.warning("dataset_params.validation_names is not set: validating on the test split (select models on "
                    "held-out training clips instead)")
        validation_set = FramesDataset(is_train=False, num_vertices=num_vertices, **params)
    weights = None
    if sampling_groups:
        weights = group_weights([entry_stem(group[0]) for group in train_set.groups], sampling_groups)
    return DatasetRepeater(train_set, config['train_params']['num_repeats'], weights), validation_set


class Trainer:
    """Networks, optimizers, schedulers and one training step.

    Args:
        config: full config dict.
        device: torch.device of this process.
        distributed: wrap every network in DistributedDataParallel (process group already initialised).
    Attributes: ``networks`` (dict name -> nn.Module, unwrapped, on ``device``), ``optimizers``, ``schedulers``
    (dict name -> object for 'generator', 'kp_detector' and, when the GAN is on, 'discriminator'), ``params`` (the
    resolved ``train_params``; ``config`` stays as given and is what checkpoints store).
    Raises: ConfigError (a ValueError) naming an unknown or missing key of the config.
    """

    def __init__(self, config, device, distributed=False):
        self.config = config
        self.device = torch.device(device)
        self.params = params = resolve_train_params(config)
        weights = params['loss_weights']
        networks = build_networks(config)
        self.networks = {name: synchronize_batchnorm(net, self.device, distributed).to(self.device)
                         for name, net in networks.items()}
        if distributed:
            device_ids = [self.device.index] if self.device.type == 'cuda' else None
            # with a vertex loss weight of 0 the vertex head runs but gets no gradients
            unused = set() if weights['vertex'] else {'vertex_head'}
            wrapped = {name: DistributedDataParallel(net, device_ids=device_ids,
                                                     find_unused_parameters=name in unused)
                       for name, net in self.networks.items()}
        else:
            wrapped = self.networks
        self.generator_full = GeneratorFullModel(wrapped['kp_detector'], wrapped['generator'],
                                                 wrapped['vertex_head'], wrapped['discriminator'], params)
        self.generator_full.to(self.device)
        self.discriminator_full = DiscriminatorFullModel(wrapped['discriminator'], params)
        self.use_discriminator = bool(weights['discriminator_gan'])
        self.grad_clip_norm = params['grad_clip_norm']
        self.amp = bool(params['mixed_precision']) and self.device.type == 'cuda'
        if params['mixed_precision'] and not self.amp:
            LOG.info("train_params.mixed_precision applies to CUDA only; training in float32 on %s", self.device)
        names = ['generator', 'kp_detector'] + (['discriminator'] if self.use_discriminator else [])
        betas = tuple(params['adam_betas'])
        self.optimizers = {name: torch.optim.Adam([p for net in OPTIMIZED_NETWORKS[name]
                                                   for p in self.networks[net].parameters()],
                                                  lr=params[f'lr_{name}'], betas=betas) for name in names}
        self.scalers = {side: torch.amp.GradScaler(self.device.type, enabled=self.amp)
                        for side in ('generator', 'discriminator')}
        self.schedulers = self.make_schedulers(start_epoch=0)

    def make_schedulers(self, start_epoch):
        """MultiStepLR schedules (x0.1 at each of ``epoch_milestones``) positioned at ``start_epoch``.

        Implemented in closed form (LambdaLR: initial lr * 0.1 ** milestones passed), so a resumed run gets exactly
        the learning rate of an uninterrupted one."""
        milestones = sorted(self.params['epoch_milestones'])

        def factor(epoch):
            return 0.1 ** sum(epoch >= m for m in milestones)

        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault('initial_lr', group['lr'])
        return {name: torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=start_epoch - 1)
                for name, optimizer in self.optimizers.items()}

    def learning_rates(self):
        """{optimizer name: current learning rate}."""
        return {name: optimizer.param_groups[0]['lr'] for name, optimizer in self.optimizers.items()}

    def _update(self, side, loss, names):
        scaler = self.scalers[side]
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for name in names:
            if self.grad_clip_norm:
                scaler.unscale_(self.optimizers[name])
                params = [p for group in self.optimizers[name].param_groups for p in group['params']]
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip_norm)
            scaler.step(self.optimizers[name])
        scaler.update()

    def step(self, batch):
        """One training iteration on a dataset batch (see ``frames_dataset.FramesDataset``).

        Returns: (losses {name: float, weighted terms incl. 'discriminator_gan'}, generated dict of the generator
        side, for visualisation). Raises FloatingPointError when a loss is not finite."""
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(self.device.type, enabled=self.amp):
            losses, generated = self.generator_full(batch)
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite generator loss {({k: float(v) for k, v in losses.items()})}; "
                                     f"lower the learning rates or set train_params.grad_clip_norm")
        self._update('generator', total, ('generator', 'kp_detector'))
        if self.use_discriminator:
            with torch.autocast(self.device.type, enabled=self.amp):
                losses.update(self.discriminator_full(batch, generated))
            self._update('discriminator', losses['discriminator_gan'], ('discriminator',))
        return {name: float(value.detach()) for name, value in losses.items()}, generated

    def end_epoch(self):
        for scheduler in self.schedulers.values():
            scheduler.step()

    def checkpoint(self, epoch, iteration, validation=None):
        """Checkpoint dict of the current state (see ``logger``), tensors as stored on the device."""
        state = {'config': self.config, 'epoch': epoch, 'iteration': iteration, 'validation': validation or {}}
        state.update({name: self.networks[name].state_dict() for name in CHECKPOINT_NETWORKS})
        state.update({f'optimizer_{name}': optimizer.state_dict() for name, optimizer in self.optimizers.items()})
        if self.amp:  # the loss scale, so that a resumed mixed-precision run does not restart it (loss spikes)
            state.update({f'scaler_{side}': scaler.state_dict() for side, scaler in self.scalers.items()})
        return state

    def resume(self, checkpoint):
        """Load every network strictly and the optimizers; schedulers continue after ``checkpoint['epoch']``.
        Raises ValueError when an optimizer state is missing (use the checkpoint.pth of a training run)."""
        for name in CHECKPOINT_NETWORKS:
            self.networks[name].load_state_dict(checkpoint[name])
        for name, optimizer in self.optimizers.items():
            if f'optimizer_{name}' not in checkpoint:
                raise ValueError(f"checkpoint lacks 'optimizer_{name}' needed to resume; it is an inference "
                                 f"checkpoint: change the config to fine-tune from it instead")
            optimizer.load_state_dict(checkpoint[f'optimizer_{name}'])
        for side, scaler in self.scalers.items():
            if self.amp and f'scaler_{side}' in checkpoint:
                scaler.load_state_dict(checkpoint[f'scaler_{side}'])
        self.schedulers = self.make_schedulers(start_epoch=checkpoint['epoch'] + 1)

    def fine_tune_from(self, checkpoint):
        """Load the weights matching each network by name and shape; optimizers stay fresh.
        Returns the report lines (``logger.format_weight_report``)."""
        lines = []
        for name in CHECKPOINT_NETWORKS:
            if name in checkpoint:
                lines += format_weight_report(name, load_matching_weights(self.networks[name], checkpoint[name]))
            else:
                lines.append(f"{name}: not in the checkpoint (new initialisation)")
        return lines

    @torch.no_grad()
    def validate(self, dataset, num_videos, num_frames, chunk=8):
        """Reconstruction on validation videos: the first frame is the source (key-reference frame), the later ones are
        rendered from their own keypoints (eval mode).

        Args:
            dataset: validation ``FramesDataset``; the first ``num_videos`` entries, ``num_frames`` evenly spaced frames.
        Returns: {'l1': mean absolute error in [0, 1] units, 'psnr': mean per-frame PSNR in dB (peak 1),
        'psnr_frozen': the same for the key-reference frame held still (the no-motion baseline),
        'flow_epe': end-point error in pixels of the generator's 2D motion against the optical flow from each frame to
        the key frame (``modules.model.flow_endpoint_error``, ``optical_flow.flow_target``), 'flow_epe_frozen': the
        same for no motion (the mean flow magnitude), 'keypoint_flow_epe': the same for the keypoints' own
        displacements against the flow at them (``modules.model.keypoint_flow_error``),
        'vertex_l1': confidence-weighted L1 of the vertex head where labels exist (absent without labels)}.
        """
        nets = self.networks
        training = {name: net.training for name, net in nets.items()}
        for net in nets.values():
            net.eval()
        l1, psnr, psnr_frozen, vertex_error, vertex_weight = [], [], [], 0.0, 0.0
        epe, epe_frozen, kp_epe = [], [], []
        for index in range(min(num_videos, len(dataset))):
            try:
                clip = dataset.read_clip(index, num_frames)
            except VideoReadError as error:
                if not dataset.skip_bad_videos:
                    raise
                LOG.warning("validation skips an unreadable video: %s", error)
                continue
            video = clip['video'].to(self.device)
            source = video[:1]
            kp_source = nets['kp_detector'](source)
            starts = range(1, len(video), chunk)
            rendered = render_keypoints(nets['generator'], source, kp_source,
                                        (nets['kp_detector'](video[start:start + chunk]) for start in starts))
            for start, (kp_driving, out) in zip(starts, rendered):
                driving = video[start:start + chunk]
                error = (out['prediction'].float() - driving).abs()
                l1 += error.mean(dim=(1, 2, 3)).tolist()
                psnr += psnr_rgb(out['prediction'].float(), driving).tolist()
                psnr_frozen += psnr_rgb(source.expand_as(driving), driving).tolist()
                flow, flow_confidence = clip_flow(video[:1], driving)
                identity = make_coordinate_grid((1,) + tuple(flow.shape[2:]), device=flow.device)
                epe += flow_endpoint_error(out['deformation'].float(), flow, flow_confidence).tolist()
                epe_frozen += flow_endpoint_error(identity.expand(len(flow), 1, -1, -1, -1), flow,
                                                  flow_confidence).tolist()
                kp_epe += keypoint_flow_error(kp_source.expand_as(kp_driving), kp_driving, flow,
                                              flow_confidence).tolist()
                confidence = clip['vertex_confidence'][start:start + chunk].to(self.device)
                if confidence.sum() > 0:
                    vertices = nets['vertex_head'](out['F_refine']).float()
                    target = clip['vertices'][start:start + chunk].to(self.device)
                    vertex_error += float((confidence[..., None] * (vertices - target).abs()).sum())
                    vertex_weight += float(2 * confidence.sum())
        for name, net in nets.items():
            net.train(training[name])
        if not l1:
            raise ValueError("validation needs test videos with at least 2 frames")
        result = {'l1': sum(l1) / len(l1), 'psnr': sum(psnr) / len(psnr),
                  'psnr_frozen': sum(psnr_frozen) / len(psnr_frozen)}
        epe_pairs = [(e, f) for e, f in zip(epe, epe_frozen) if math.isfinite(e)]
        if epe_pairs:
            result.update(flow_epe=sum(e for e, _ in epe_pairs) / len(epe_pairs),
                          flow_epe_frozen=sum(f for _, f in epe_pairs) / len(epe_pairs))
        kp_epe = [e for e in kp_epe if math.isfinite(e)]
        if kp_epe:
            result['keypoint_flow_epe'] = sum(kp_epe) / len(kp_epe)
        if vertex_weight:
            result['vertex_l1'] = vertex_error / vertex_weight
        return result


def clip_flow(key_frame, frames):
    """Teacher motion from each frame to the key frame (``optical_flow.flow_target``).

    Args:
        key_frame: (1, 3, H, W) in [0, 1]. frames: (T, 3, H, W) in [0, 1], same device.
    Returns:
        (flow (T, 2, H, W), confidence (T, 1, H, W)) float32 on the frames' device.
    """
    key = tensor_to_frames(key_frame.float())[0].numpy()
    pairs = [flow_target(key, frame) for frame in tensor_to_frames(frames.float()).numpy()]
    return tuple(torch.from_numpy(np.stack(parts)).to(frames.device) for parts in zip(*pairs))


def setup_distributed(rank, world_size, device):
    """Join the process group (nccl on CUDA, gloo on CPU; rendezvous from MASTER_ADDR / MASTER_PORT) and select
    the CUDA device. No-op for a single process."""
    if world_size > 1 and not dist.is_initialized():
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=rank, world_size=world_size)


def train(config, log_dir, device, checkpoint_path=None, rank=0, world_size=1):
    """Train (or resume / fine-tune) in this process; call once per process.

    Args:
        config: full config dict.
        log_dir: run folder (rank 0's value is used by every rank).
        device: this process' device ('cpu', 'cuda:1', torch.device).
        checkpoint_path: resume or fine-tune from this ``*.pth`` (see module docstring).
        rank, world_size: process rank and count; world_size > 1 trains with DistributedDataParallel.
    Returns: the last validation dict on rank 0 (None on other ranks or when no epoch ran).
    Raises: ValueError if ``train_params.batch_size`` is not divisible by ``world_size``.
    """
    device = torch.device(device)
    distributed = world_size > 1
    setup_distributed(rank, world_size, device)
    if distributed:
        shared = [str(log_dir)]
        dist.broadcast_object_list(shared, src=0)
        log_dir = shared[0]
    params = resolve_train_params(config)
    if params['batch_size'] % world_size:
        raise ValueError(f"train_params.batch_size {params['batch_size']} (the total over all processes) is not "
                         f"divisible by the {world_size} processes")
    torch.manual_seed(params['seed'])
    trainer = Trainer(config, device, distributed)
    start_epoch, iteration, best = 0, 0, math.inf
    train_seconds = 0.0  # wall-clock seconds spent in this run's epochs, summed over the sittings that resumed it
    report = None
    if checkpoint_path is not None:
        checkpoint = load_checkpoint(checkpoint_path, map_location=device)
        if is_resume(config, checkpoint['config']):
            trainer.resume(checkpoint)
            start_epoch, iteration = checkpoint['epoch'] + 1, checkpoint.get('iteration', 0)
            train_seconds = checkpoint.get('train_seconds', 0.0)
            best_path = os.path.join(log_dir, 'best.pth')
            if os.path.isfile(best_path):
                best = load_checkpoint(best_path)['validation'].get('l1', math.inf)
        else:
            report = [f"fine-tuning from {checkpoint_path} (its config differs): matching weights loaded, "
                      f"fresh optimizers"] + trainer.fine_tune_from(checkpoint)
        del checkpoint
    torch.manual_seed(params['seed'] + 1000 * rank + start_epoch)

    train_set, validation_set = make_datasets(config)
    sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, drop_last=True) if distributed else None
    loader = DataLoader(train_set, batch_size=params['batch_size'] // world_size, shuffle=sampler is None,
                        sampler=sampler, num_workers=params['dataloader_workers'], drop_last=True,
                        pin_memory=device.type == 'cuda', persistent_workers=params['dataloader_workers'] > 0)
    if len(loader) == 0:
        raise ValueError(f"no training batch: {len(train_set)} items per epoch < batch size {params['batch_size']}; "
                         f"raise train_params.num_repeats")
    logger = Logger(log_dir, config.get('visualizer_params')) if rank == 0 else None
    if logger is not None:
        logger.save_config(config)
        if report is not None:
            logger.log_text('\n'.join(report))
            print('\n'.join(report))
        if start_epoch >= params['num_epochs']:
            print(f"nothing to train: the checkpoint finished epoch {start_epoch - 1} of {params['num_epochs']}; "
                  f"raise train_params.num_epochs to continue")
    validation = None
    validation_params = params['validation']
    sitting_start = time.monotonic()
    for epoch in range(start_epoch, params['num_epochs']):
        if sampler is not None:
            sampler.set_epoch(epoch)
        progress = tqdm(loader, desc=f'epoch {epoch + 1}/{params["num_epochs"]}', disable=rank != 0, leave=False)
        for batch in progress:
            losses, generated = trainer.step(batch)
            iteration += 1
            if logger is not None:
                logger.log_iter(iteration, losses, trainer.learning_rates())
                progress.set_postfix(loss=f'{sum(losses.values()):.3f}')
        trainer.end_epoch()
        if logger is None:
            continue
        validation = trainer.validate(validation_set, validation_params['num_videos'], validation_params['num_frames'])
        tqdm.write(logger.log_epoch(epoch, iteration, validation))
        logger.log_images(epoch, iteration, batch, generated)
        state = trainer.checkpoint(epoch, iteration, validation)
        state['train_seconds'] = train_seconds + time.monotonic() - sitting_start
        if (epoch + 1) % params['checkpoint_freq'] == 0 or epoch == params['num_epochs'] - 1:
            save_checkpoint(os.path.join(log_dir, 'checkpoint.pth'), state)
        if validation['l1'] < best:
            best = validation['l1']
            save_checkpoint(os.path.join(log_dir, 'best.pth'), state)
    if logger is not None:
        logger.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return validation
