"""Command-line arguments shared by the benchmarks that measure the test split without a model."""
import yaml


def add_test_split_arguments(parser, frames=150):
    """Add ``--config`` (the model config whose data root and frame size are used), ``--frames``, ``--videos`` and
    ``--out`` to an ``argparse.ArgumentParser``; returns it."""
    parser.add_argument('--config', default='config/humans256-cpu.yaml')
    parser.add_argument('--frames', type=int, default=frames)
    parser.add_argument('--videos', nargs='+', default=None, help='test clips (default: the whole test split)')
    parser.add_argument('--out', default=None, help='Markdown file to write (default: print only)')
    return parser


def read_config(path):
    """The YAML config at ``path`` as a dict."""
    with open(path) as handle:
        return yaml.safe_load(handle)
