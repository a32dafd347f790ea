"""Batch-norm synchronisation for multi-process training: the one place that decides it.

With DistributedDataParallel on CUDA every ``BatchNorm*d`` becomes ``torch.nn.SyncBatchNorm`` (statistics over the
global batch, as FOMM's synchronised batch norm). On the CPU (gloo), where SyncBatchNorm cannot run, and in
single-process training the plain batch norm stays: each process normalises with its own batch statistics and DDP
broadcasts rank 0's running statistics at every forward pass.
"""
import torch


def synchronize_batchnorm(module, device, distributed):
    """Return ``module`` with batch norms suited to the run (converted in place where needed).

    Args:
        module: an ``nn.Module`` (before it is wrapped in DistributedDataParallel).
        device: the process' device (str or ``torch.device``).
        distributed: True when several processes train together.
    Returns:
        the module with ``torch.nn.SyncBatchNorm`` layers on CUDA + distributed, else ``module`` unchanged.
    Source: ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``.
    """
    if distributed and torch.device(device).type == 'cuda':
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module
