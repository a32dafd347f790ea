"""Command line entry point: ``python run.py --config CONFIG --mode MODE [options]``.

Each mode is one small function registered in ``MODES`` (the evaluation adds its modes there).

train: ``python run.py --config config/ted384.yaml --mode train --device 0,1,2,3`` trains with one process per
device (DistributedDataParallel, launched here with torch.multiprocessing; ``torchrun --nproc_per_node 4 run.py ...``
works too). ``--device cpu`` trains on the CPU; ``cpu,cpu`` runs two CPU processes (gloo). The run folder is
``<log-dir>/<config stem>_<YYYYmmdd-HHMMSS>``. ``--checkpoint RUN/checkpoint.pth`` without ``--config`` (or with
the same config) resumes that run at its next epoch in its folder; with a different config it fine-tunes from the
matching weights in a new run folder.

Options are spelled as in ``codec.py`` and ``tools/`` (``--device``, hyphens); the older spellings ``--device_ids``,
``--device-ids``, ``--log_dir`` and ``--weights_dir`` are accepted as aliases. Installed (``pip install -e .``), this is
the ``s2d-run`` command.
"""
import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
import yaml

from modules.config import resolve_config

LOG = logging.getLogger('run')


def load_config(path):
    """YAML config -> dict (``yaml.safe_load``), as written (defaults are filled in where it is used).

    Raises:
        FileNotFoundError: no such file.
        ConfigError (a ValueError): not a config, or an unknown (misspelled) or missing key or section; the message
            names the file, the key, its section and the valid keys (``modules.config.resolve_config``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config '{path}' does not exist; see config/*.yaml")
    with open(path) as handle:
        config = yaml.safe_load(handle)
    resolve_config(config, source=path)
    return config


def parse_device_ids(text):
    """The devices of ``--device``: one process per comma-separated item.

    'cpu' -> [cpu]; 'cpu,cpu' -> two CPU processes; 'cuda' or 'cuda:1' (codec.py's spelling) -> that CUDA device;
    '0,1,2,3' -> CUDA devices 0..3; None -> cuda:0 if available else cpu.
    Raises ValueError for malformed ids, mixed CPU and CUDA devices, or CUDA devices that do not exist."""
    if text is None:
        return [torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')]
    devices = []
    for item in text.split(','):
        item = item.strip()
        index = item[len('cuda:'):] if item.startswith('cuda:') else '0' if item == 'cuda' else item
        if item == 'cpu':
            devices.append(torch.device('cpu'))
        elif index.isdigit():
            if int(index) >= torch.cuda.device_count():
                raise ValueError(f"--device {text}: CUDA device {index} does not exist "
                                 f"({torch.cuda.device_count()} visible); use --device cpu on a CPU machine")
            devices.append(torch.device('cuda', int(index)))
        else:
            raise ValueError(f"--device {text!r}: give cpu, cuda, cuda:N or CUDA indices '0,1,2,3' (repeat cpu for "
                             f"several CPU processes: 'cpu,cpu')")
    if len({d.type for d in devices}) > 1:
        raise ValueError(f"--device {text}: do not mix CPU and CUDA devices")
    return devices


def new_run_dir(log_root, config_path):
    """``<log_root>/<config stem>_<YYYYmmdd-HHMMSS>``; raises ValueError if the path contains whitespace."""
    stem = Path(config_path).stem if config_path else 'run'
    path = Path(log_root) / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    if any(c.isspace() for c in str(path)):
        raise ValueError(f"log dir '{path}' contains whitespace; choose a --log-dir (and config name) without spaces")
    return path


def free_port():
    """A free TCP port on localhost for the process-group rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _spawned(index, function, devices, kwargs):
    function(rank=index, world_size=len(devices), device=devices[index], **kwargs)


def launch(function, devices, **kwargs):
    """Run ``function(rank=, world_size=, device=, **kwargs)`` once per device.

    Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) this process runs its own rank on
    ``devices[LOCAL_RANK]`` (CUDA) or the CPU. Otherwise one device runs in this process and several are spawned
    with torch.multiprocessing (rendezvous on a free localhost port)."""
    if 'WORLD_SIZE' in os.environ and 'RANK' in os.environ:
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        device = devices[0] if devices[0].type == 'cpu' else \
            (devices[local_rank] if local_rank < len(devices) else torch.device('cuda', local_rank))
        return function(rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']), device=device,
                        **kwargs)
    if len(devices) == 1:
        return function(rank=0, world_size=1, device=devices[0], **kwargs)
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ['MASTER_PORT'] = str(free_port())
    mp.spawn(_spawned, args=(function, devices, kwargs), nprocs=len(devices), join=True)
    return None


def train_mode(args):
    """Train, resume or fine-tune (see the module docstring)."""
    import train
    from logger import load_checkpoint
    checkpoint_config = load_checkpoint(args.checkpoint)['config'] if args.checkpoint else None
    config = load_config(args.config) if args.config else checkpoint_config
    resume = checkpoint_config is not None and train.is_resume(config, checkpoint_config)
    run_dir = Path(args.checkpoint).parent if resume else new_run_dir(args.log_dir, args.config)
    if os.environ.get('RANK', '0') == '0':
        print(f"{'resuming' if resume else 'training'}: logs and checkpoints in {run_dir}")
    return launch(train.train, parse_device_ids(args.device), config=config, log_dir=str(run_dir),
                  checkpoint_path=args.checkpoint)


def _evaluation_inputs(args):
    """(config, checkpoint, out dir, device) of the evaluation modes; the config defaults to the checkpoint's."""
    if not args.checkpoint:
        raise ValueError(f"--mode {args.mode} needs --checkpoint (a trained *.pth)")
    from modules.build import load_checkpoint
    config = load_config(args.config) if args.config else load_checkpoint(args.checkpoint)['config']
    stem = Path(args.config or args.checkpoint).stem
    out = Path(args.out) if args.out else Path(args.log_dir) / f'{args.mode}_{stem}'
    return config, args.checkpoint, out, parse_device_ids(args.device)[0]


def reconstruction_mode(args):
    """FOMM-style uncompressed reconstruction of the test videos (reconstruction.py)."""
    from reconstruction import run_reconstruction
    config, checkpoint, out, device = _evaluation_inputs(args)
    run_reconstruction(config, checkpoint, out, device, args.weights_dir)
    print(f"reconstructions and metrics in {out / 'reconstruction'}")


def rd_mode(args):
    """Rate-distortion curves and BD-rates against VVC (evaluation/rd.py)."""
    from evaluation.rd import run_rd
    config, checkpoint, out, device = _evaluation_inputs(args)
    result = run_rd(config, checkpoint, out, device, args.weights_dir)
    print(f"{result['computed']} points computed, {result['cached']} from the cache; results in {out}/summary.md")


def vertices_mode(args):
    """Vertex accuracy against teacher labels (evaluation/vertices.py)."""
    from evaluation.rd import run_vertices
    config, checkpoint, out, device = _evaluation_inputs(args)
    run_vertices(config, checkpoint, out, device, args.weights_dir)
    print(f"vertex accuracy and overlay in {out / 'vertices'}")


#: mode name -> function(args)
MODES = {'train': train_mode, 'reconstruction': reconstruction_mode, 'rd': rd_mode, 'vertices': vertices_mode}


def parse_args(argv=None):
    """Command line -> argparse.Namespace (config, mode, checkpoint, log_dir, device, verbose, out, weights_dir).
    Exits with argparse's usage message (code 2) on a bad command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', help='YAML config (optional when resuming from --checkpoint)')
    parser.add_argument('--mode', default='train', choices=sorted(MODES))
    parser.add_argument('--checkpoint', help='checkpoint .pth to resume (same config) or fine-tune from')
    parser.add_argument('--log-dir', '--log_dir', dest='log_dir', default='log',
                        help='parent folder of the run folders (default: log)')
    parser.add_argument('--device', '--device-ids', '--device_ids', dest='device',
                        help="cpu, cuda, cuda:N, or one process per item: '0,1,2,3' (CUDA), 'cpu,cpu' "
                             "(default: cuda:0 if any, else cpu)")
    parser.add_argument('--verbose', action='store_true', help='info-level logging')
    parser.add_argument('--out', help='output folder of reconstruction / rd / vertices (default: '
                                      '<log-dir>/<mode>_<config stem>; rerun with the same folder to resume)')
    parser.add_argument('--weights-dir', '--weights_dir', dest='weights_dir',
                        help='folder with learned-metric weights (LPIPS/DISTS/FVD), searched before the torch hub cache')
    args = parser.parse_args(argv)
    if args.config is None and args.checkpoint is None:
        parser.error('--config is required (unless --checkpoint gives the run to resume)')
    return args


def main(argv=None):
    """Run the mode of the command line ``argv`` (default ``sys.argv[1:]``); returns what the mode returns.
    Raises FileNotFoundError / ValueError (ConfigError, CheckpointError) for missing files and bad configs."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(asctime)s %(name)s %(levelname)s: %(message)s')
    return MODES[args.mode](args)


def cli(argv=None):
    """:func:`main` as a command (``python run.py``, ``s2d-run``): returns exit code 0; a missing file or a bad
    config or value ends the process with one line ``error: ...`` and exit code 1."""
    try:
        main(argv)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    return 0


if __name__ == '__main__':
    sys.exit(cli())
