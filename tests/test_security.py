"""Issue 11: hostile or careless inputs (crafted checkpoints, bitstreams, weight files, output paths) must not run
code, destroy data or exhaust the machine. Hostile payloads here only ever write a marker file in tmp_path."""
import copy
import os
import stat
import warnings

import numpy as np
import pytest
import torch
import yaml

import codec as cli
from coding import bitstream, vvc
from coding.codec import Decoder, Encoder
from tests.conftest import REPO_ROOT, age, dead_pid, save_tiny_checkpoint
from tools.crop import CropBox, apply_crop
from video_io import read_frames

SAMPLE = REPO_ROOT / 'data' / 'samples' / 'head04.mp4'
T = 4


def tiny_config():
    with open(REPO_ROOT / 'config' / 'test-tiny.yaml') as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope='module')
def frames():
    clip, _ = read_frames(SAMPLE, range(T))
    return np.stack([apply_crop(frame, CropBox(0, 0, 256), 64) for frame in clip])


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp('sec') / 'tiny.pth')


@pytest.fixture(scope='module')
def coded(checkpoint, frames):
    return Encoder(checkpoint, qp=42).encode(frames, fps=30)


def marker_program(tmp_path, name='evil'):
    """An executable that only creates tmp_path/<name>.ran when it is run."""
    marker = tmp_path / f'{name}.ran'
    program = tmp_path / name
    program.write_text(f'#!/bin/sh\ntouch "{marker}"\nexit 1\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program, marker


def retag(data, **fields):
    """The one-segment stream ``data`` with header or segment fields replaced (CRCs and index recomputed)."""
    stream = bitstream.parse(data)
    (segment,) = stream.segments
    for key, value in fields.items():
        setattr(segment if hasattr(segment, key) else stream, key, value)
    return bitstream.pack(stream)


# -- 1. a checkpoint never names a program to run ------------------------------------------------------------------

def test_checkpoint_cannot_name_the_vtm_programs(tmp_path, frames, monkeypatch):
    program, marker = marker_program(tmp_path)
    config = tiny_config()
    config['codec_params']['vtm'] = {'encoder': str(program), 'decoder': str(program), 'cfg_dir': str(tmp_path)}
    hostile = save_tiny_checkpoint(tmp_path / 'hostile.pth', config=config)
    for name in ('VTM_ENCODER', 'VTM_DECODER', 'VTM_CFG_DIR'):
        monkeypatch.delenv(name, raising=False)
    with pytest.warns(UserWarning, match='ignoring codec_params.vtm'):
        encoder = Encoder(hostile)
    data = retag(encoder.encode(frames[:2], fps=30), key_codec='vtm')
    with pytest.warns(UserWarning, match='ignoring codec_params.vtm'):
        decoder = Decoder(hostile)
    with pytest.raises(vvc.VVCError, match='VTM_DECODER'):
        decoder.decode(data)
    with pytest.raises(vvc.VVCError, match='VTM_ENCODER'):
        encoder_vtm = Encoder(hostile, vvc='vtm')
        encoder_vtm.encode(frames[:1], fps=30)
    assert not marker.exists()
    # through the command line as well: a clean error, the program is not run
    src = tmp_path / 'vtm.s2d'
    src.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        code = cli.main(['decode', '--checkpoint', hostile, '--input', str(src), '--output', str(tmp_path / 'o.mp4')])
    assert code != 0 and not marker.exists()


def test_vtm_decode_needs_only_the_decoder(tmp_path, monkeypatch):
    for name in ('VTM_ENCODER', 'VTM_DECODER', 'VTM_CFG_DIR'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(vvc.VVCError, match='no decoder given; set the VTM_DECODER'):
        vvc.decode(b'\x00\x00\x01', 64, 64, backend='vtm')


def test_weights_id_covers_the_config(tmp_path, checkpoint, coded):
    config = tiny_config()
    config['model_params']['kp_detector_params']['temperature'] = 0.2    # same weights, other model
    other = save_tiny_checkpoint(tmp_path / 'other.pth', config=config)
    with pytest.raises(bitstream.BitstreamError, match='model weights'):
        Decoder(other).parse(coded)
    Decoder(checkpoint).parse(coded)


# -- 2. learned-metric weight files are data, not code -------------------------------------------------------------

class _TouchOnUnpickle:
    """Unpickling this (torch.load with weights_only=False) creates a marker file, nothing else."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.mark.parametrize('metric,filename', [('lpips_alex', 'alexnet-owt-7be5be79.pth'),
                                             ('lpips_vgg', 'vgg16-397923af.pth'),
                                             ('dists', 'dists_weights.pt')])
def test_hostile_metric_weights_are_not_unpickled(tmp_path, metric, filename):
    from evaluation.learned import build_learned_metric
    from evaluation.weights import Unavailable
    weights = tmp_path / 'weights'
    weights.mkdir()
    marker = tmp_path / 'unpickled.ran'
    for name in ('alexnet-owt-7be5be79.pth', 'vgg16-397923af.pth', 'dists_weights.pt'):
        torch.save({'payload': _TouchOnUnpickle(marker)}, weights / name)
    result = build_learned_metric(metric, 'cpu', weights_dir=weights)
    assert not marker.exists()
    assert isinstance(result, Unavailable) and 'weights_only=True' in result.reason


def test_the_perceptual_losss_vgg19_file_goes_through_the_one_weights_reader(tmp_path, monkeypatch):
    from modules.model import VGG19_FILE, VGG19Features
    from modules.weights import WeightsFileError
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f'file not found: put {VGG19_FILE} .* in one of: {tmp_path}'):
        VGG19Features(pretrained=True)
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    marker = tmp_path / 'unpickled.ran'
    torch.save({'payload': _TouchOnUnpickle(marker)}, tmp_path / 'hub' / 'checkpoints' / VGG19_FILE)
    with pytest.raises(WeightsFileError, match='weights_only=True'):
        VGG19Features(pretrained=True)
    assert not marker.exists()


def test_i3d_torchscript_needs_the_pinned_sha256(tmp_path, monkeypatch):
    from evaluation import fvd
    from evaluation.weights import Unavailable
    script = torch.jit.script(torch.nn.Identity())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        script.save(str(tmp_path / 'i3d_torchscript.pt'))
    digest = fvd.file_sha256(tmp_path / 'i3d_torchscript.pt')
    monkeypatch.setattr(fvd, 'I3D_SHA256', None)
    result = fvd.build_i3d('cpu', weights_dir=tmp_path)
    assert isinstance(result, Unavailable) and 'I3D_SHA256' in result.reason
    monkeypatch.setattr(fvd, 'I3D_SHA256', '0' * 64)
    result = fvd.build_i3d('cpu', weights_dir=tmp_path)
    assert isinstance(result, Unavailable) and 'is refused' in result.reason and digest in result.reason
    monkeypatch.setattr(fvd, 'I3D_SHA256', digest)
    assert isinstance(fvd.build_i3d('cpu', weights_dir=tmp_path), fvd.I3DFeatures)


# -- 3. output paths never destroy data; 6. one clear line and exit 2 ----------------------------------------------

@pytest.fixture(scope='module')
def clip64(tmp_path_factory, frames):
    from video_io import write_video
    path = tmp_path_factory.mktemp('clip') / 'clip64.mp4'
    write_video(path, frames, 30)
    return path


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_png_dir_never_deletes_existing_files(tmp_path, checkpoint, coded, capsys):
    folder = tmp_path / 'work'
    folder.mkdir()
    src = folder / 'clip.s2d'
    src.write_bytes(coded)
    (folder / 'notes.txt').write_text('keep me')
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src,
                        '--output', tmp_path / 'r.mp4', '--png-dir', folder)
    assert code == 2 and 'inside --png-dir' in err and len(err.splitlines()) == 1
    assert src.read_bytes() == coded and (folder / 'notes.txt').read_text() == 'keep me'
    other = tmp_path / 'c.s2d'
    other.write_bytes(coded)
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', other,
                        '--output', tmp_path / 'r.mp4', '--png-dir', folder)
    assert code == 2 and 'not empty' in err and len(err.splitlines()) == 1
    assert src.read_bytes() == coded and (folder / 'notes.txt').read_text() == 'keep me'
    empty = tmp_path / 'pngs'
    empty.mkdir()
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src,
                        '--output', tmp_path / 'r.mp4', '--png-dir', empty)
    assert code == 0, err
    assert sorted(p.name for p in empty.iterdir()) == [f'{i:07d}.png' for i in range(T)]
    assert (folder / 'notes.txt').read_text() == 'keep me' and src.read_bytes() == coded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]          # no temporary left


def test_outputs_that_would_overwrite_inputs_are_refused(tmp_path, checkpoint, coded, clip64, capsys):
    video = tmp_path / 'in.mp4'
    video.write_bytes(clip64.read_bytes())
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', video, '--output', video,
                        '--no-crop')
    assert code == 2 and 'is the input video' in err and video.read_bytes() == clip64.read_bytes()
    src = tmp_path / 'c.s2d'
    src.write_bytes(coded)
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src, '--output', src)
    assert code == 2 and 'is the input bitstream' in err and src.read_bytes() == coded
    out = tmp_path / 'r.mp4'
    out.write_bytes(b'previous video')
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src, '--output', out,
                        '--vertices', out)
    assert code == 2 and 'is also --output' in err and out.read_bytes() == b'previous video'
    link = tmp_path / 'alias.s2d'
    link.symlink_to(src)
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src, '--output', out,
                        '--vertices', link)
    assert code == 2 and src.read_bytes() == coded


@pytest.mark.parametrize('fps', ['inf', 'nan', '0.0001', '-3'])
def test_bad_fps_is_one_line_exit_2(tmp_path, checkpoint, clip64, capsys, fps):
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                        '--output', tmp_path / 'o.s2d', '--no-crop', '--fps', fps)
    assert code == 2 and '--fps' in err and len(err.splitlines()) == 1


def test_negative_refine_steps_is_one_line_exit_2(tmp_path, checkpoint, clip64, capsys):
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                        '--output', tmp_path / 'o.s2d', '--no-crop', '--refine-steps', '-1')
    assert code == 2 and '--refine-steps' in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'o.s2d').exists()


def test_bad_device_and_output_paths_are_one_line_exit_2(tmp_path, checkpoint, clip64, capsys):
    import torch as _torch
    if _torch.cuda.device_count() < 8:
        code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                            '--output', tmp_path / 'o.s2d', '--no-crop', '--device', 'cuda:7')
        assert code == 2 and 'cuda:7' in err and len(err.splitlines()) == 1
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                        '--output', tmp_path, '--no-crop')
    assert code == 2 and 'is a directory' in err and len(err.splitlines()) == 1
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                        '--output', blocker / 'sub' / 'o.s2d', '--no-crop')
    assert code == 2 and 'is not a folder' in err and len(err.splitlines()) == 1
    if os.geteuid() != 0:
        locked = tmp_path / 'locked'
        locked.mkdir()
        locked.chmod(0o500)
        try:
            code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', clip64,
                                '--output', locked / 'o.s2d', '--no-crop')
            assert code == 2 and 'cannot write' in err
        finally:
            locked.chmod(0o700)


def bad_checkpoints(tmp_path, checkpoint):
    good = open(checkpoint, 'rb').read()
    (tmp_path / 'truncated.pth').write_bytes(good[:len(good) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'folder.pth').mkdir()
    (tmp_path / 'config.pth').write_text('model_params: {}\n')
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    torch.save({'config': {'model_params': {}}, 'kp_detector': {}, 'generator': {}, 'vertex_head': {}},
               tmp_path / 'noconfig.pth')
    torch.save({'config': tiny_config(), 'kp_detector': _TouchOnUnpickle(tmp_path / 'ckpt.ran')},
               tmp_path / 'pickle.pth')
    return ['truncated', 'empty', 'folder', 'config', 'list', 'noconfig', 'pickle']


def test_bad_checkpoints_are_one_line_exit_2(tmp_path, checkpoint, coded, capsys):
    from modules.build import CheckpointError, load_inference_models
    src = tmp_path / 'c.s2d'
    src.write_bytes(coded)
    for name in bad_checkpoints(tmp_path, checkpoint):
        path = tmp_path / f'{name}.pth'
        with pytest.raises(CheckpointError):
            load_inference_models(str(path))
        code, err = run_cli(capsys, 'decode', '--checkpoint', path, '--input', src, '--output', tmp_path / 'r.mp4')
        assert code == 2 and len(err.splitlines()) == 1, (name, err)
        assert str(path) in err and 'Traceback' not in err
    assert not (tmp_path / 'ckpt.ran').exists()
    code, err = run_cli(capsys, 'decode', '--checkpoint', tmp_path / 'pickle.pth', '--input', src,
                        '--output', tmp_path / 'r.mp4')
    assert 'refused' in err and 'run code' in err and 'weights_only=False' not in err
    with pytest.raises(FileNotFoundError):
        load_inference_models(str(tmp_path / 'missing.pth'))
    import logger     # training's resume reads through the same loader
    for name in ('truncated', 'empty', 'folder', 'list', 'pickle'):
        with pytest.raises(CheckpointError) as error:
            logger.load_checkpoint(tmp_path / f'{name}.pth')
        assert 'weights_only=False' not in str(error.value)
        assert str(error.value).startswith(f"{tmp_path / name}.pth: ") and '; ' in str(error.value)  # what to do
    assert not (tmp_path / 'ckpt.ran').exists()


# -- 4. non-regular inputs, constant-memory decoding ---------------------------------------------------------------

def test_non_regular_bitstream_files_are_refused(tmp_path):
    import signal
    link = tmp_path / 'null.s2d'
    link.symlink_to('/dev/null')
    with pytest.raises(bitstream.BitstreamError, match='not a regular file'):
        bitstream.read(link)
    fifo = tmp_path / 'pipe.s2d'
    os.mkfifo(fifo)

    def alarm(*_):
        raise TimeoutError('reading a FIFO blocked')
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(5)
    try:
        with pytest.raises(bitstream.BitstreamError, match='not a regular file'):
            bitstream.read(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(bitstream.BitstreamError, match='not a regular file'):
        bitstream.read(tmp_path)


def test_cli_decode_does_not_keep_vertices(tmp_path, checkpoint, coded, capsys, monkeypatch):
    import gc
    import weakref
    from coding import codec as codec_lib
    original = codec_lib.Decoder.decode
    alive = []

    def tracking(self, data, start_frame=0):
        refs = []
        for frame, verts in original(self, data, start_frame):
            gc.collect()
            alive.append(sum(ref() is not None for ref in refs))
            verts = np.array(verts)
            refs.append(weakref.ref(verts))
            yield frame, verts
    monkeypatch.setattr(codec_lib.Decoder, 'decode', tracking)
    src = tmp_path / 'c.s2d'
    src.write_bytes(coded)
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src, '--output', tmp_path / 'r.mp4')
    assert code == 0, err
    assert len(alive) == T and max(alive) <= 1, alive
    code, err = run_cli(capsys, 'decode', '--checkpoint', checkpoint, '--input', src, '--output', tmp_path / 'r.mp4',
                        '--vertices', tmp_path / 'v.npz')
    assert code == 0 and max(alive[T:]) <= 1, alive
    full = np.stack([v for _, v in original(Decoder(checkpoint), coded)])
    np.testing.assert_array_equal(np.load(tmp_path / 'v.npz')['vertices'], full)


# -- 4. tiny files must not exhaust the machine --------------------------------------------------------------------

def test_frame_count_is_checked_against_the_keypoint_data(checkpoint, coded):
    import time
    from coding import keypoint_coder
    decoder = Decoder(checkpoint)
    with pytest.raises(bitstream.BitstreamError, match='can hold at most'):
        decoder.parse(retag(coded, frame_count=10 ** 7))
    stream = bitstream.parse(coded)
    most = keypoint_coder.max_frames(len(stream.segments[0].keypoints), stream.num_kp)
    assert T < most < 10 ** 5
    start = time.monotonic()
    with pytest.raises(bitstream.BitstreamError, match='ends before frame'):
        decoder.decode_keypoints(retag(coded, frame_count=most))
    assert time.monotonic() - start < 5
    with pytest.raises(bitstream.BitstreamError, match='ends before frame|after the last frame'):
        list(decoder.decode(retag(coded, frame_count=T + 3)))


def test_keypoints_outside_the_unit_cube_are_rejected(checkpoint, coded):
    from coding.keypoint_coder import KeypointEncoder
    stream = bitstream.parse(coded)
    encoder = KeypointEncoder(stream.num_kp, stream.kp_step)
    q = np.zeros((stream.num_kp, 3), np.int64)
    q[3, 1] = round(42.0 / stream.kp_step)
    encoder.encode_frame(q)
    with pytest.raises(bitstream.BitstreamError, match=r'outside \[-1, 1\]'):
        Decoder(checkpoint).decode_keypoints(retag(coded, frame_count=1, keypoints=encoder.finish()))


def test_key_frame_of_other_pictures_is_rejected_before_decoding(checkpoint, coded, frames):
    decoder = Decoder(checkpoint)
    large = vvc.encode_intra(np.zeros((256, 256, 3), np.uint8), 63).bitstream        # 256x256 claims 64x64
    with pytest.raises(bitstream.BitstreamError, match='codes 256x256 pictures, expected 64x64'):
        decoder.decode(retag(coded, key_frame=large))
    quarters = vvc.encode_sequence(frames[:4, :32, :32], 63, 30).bitstream           # 4 x 32x32 = one 64x64
    with pytest.raises(bitstream.BitstreamError, match='codes 32x32'):
        decoder.decode(retag(coded, key_frame=quarters))
    two = bitstream.parse(coded).segments[0].key_frame * 2                                         # two 64x64 pictures
    with pytest.raises(bitstream.BitstreamError, match='more than 1 picture'):
        decoder.decode(retag(coded, key_frame=two))


# -- 5. a truncated input video is not coded silently --------------------------------------------------------------

def test_truncated_input_fails_unless_allowed(tmp_path, checkpoint, frames, capsys):
    import subprocess
    from video_io import write_video
    full = tmp_path / 'full.mp4'
    write_video(full, np.concatenate([frames] * 8), 30)                                  # 32 frames
    front = tmp_path / 'front.mp4'                                                        # moov at the front
    subprocess.run([vvc.ffmpeg_exe(), '-nostdin', '-loglevel', 'error', '-i', full, '-c', 'copy',
                    '-movflags', '+faststart', front], check=True)
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(front.read_bytes()[:front.stat().st_size // 2])
    out = tmp_path / 'o.s2d'
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', cut, '--output', out, '--no-crop')
    assert code == 1 and 'of the 32 frames' in err and '--allow-truncated' in err and not out.exists()
    code, err = run_cli(capsys, 'encode', '--checkpoint', checkpoint, '--input', cut, '--output', out, '--no-crop',
                        '--allow-truncated')
    assert code == 0 and 'warning' in err and out.exists()
    assert bitstream.read(out).frame_count < 32


def test_vmaf_works_with_a_tmpdir_holding_colons_and_quotes(tmp_path, frames, monkeypatch):
    import tempfile
    from evaluation.vmaf import vmaf
    odd = tmp_path / "a:b'c"
    odd.mkdir()
    monkeypatch.setenv('TMPDIR', str(odd))
    monkeypatch.setattr(tempfile, 'tempdir', None)
    assert vmaf(frames[:2], frames[:2], 30)['vmaf'] > 90


# -- 7. leftovers after kills, log.txt after resume, permissions ---------------------------------------------------

def test_leftovers_of_killed_writers_are_removed_by_the_next_run(tmp_path, monkeypatch, frames):
    import logger
    from video_io import write_video
    dead, live = dead_pid(), os.getppid()
    leftovers = {tmp_path / f'.out.s2d.tmp{dead}.x1', tmp_path / f'.r.mp4.tmp{dead}',
                 tmp_path / f'.checkpoint.pth.tmp{dead}.ab.pth', tmp_path / f'.best.pth.tmp{dead}.cd.pth'}
    for path in leftovers:
        path.write_bytes(b'partial')
    kept = tmp_path / f'.out.s2d.tmp{live}.x2'
    kept.write_bytes(b'another live writer')
    (tmp_path / f'.pngs.tmp{dead}.zz').mkdir()
    (tmp_path / f'.pngs.tmp{dead}.zz' / '0000000.png').write_bytes(b'x')
    age(*leftovers, kept, tmp_path / f'.pngs.tmp{dead}.zz' / '0000000.png', tmp_path / f'.pngs.tmp{dead}.zz')
    bitstream.write_atomic(tmp_path / 'out.s2d', b'data')
    write_video(tmp_path / 'r.mp4', frames[:1], 30)
    logger.save_checkpoint(tmp_path / 'checkpoint.pth', {'epoch': 1})
    logger.save_checkpoint(tmp_path / 'best.pth', {'epoch': 1})
    with cli._new_folder(tmp_path / 'pngs') as folder:
        open(os.path.join(folder, '0000000.png'), 'wb').close()
    assert not any(path.exists() for path in leftovers) and not (tmp_path / f'.pngs.tmp{dead}.zz').exists()
    assert kept.exists()
    vvc_tmp = tmp_path / 'tmp'
    vvc_tmp.mkdir()
    (vvc_tmp / f's2d_vvc_{dead}_abc').mkdir()
    (vvc_tmp / f's2d_vvc_{dead}_abc' / 'in.yuv').write_bytes(b'x' * 100)
    age(vvc_tmp / f's2d_vvc_{dead}_abc' / 'in.yuv', vvc_tmp / f's2d_vvc_{dead}_abc')
    monkeypatch.setenv('TMPDIR', str(vvc_tmp))
    monkeypatch.setattr(__import__('tempfile'), 'tempdir', None)
    vvc.encode_intra(frames[0], 50)
    assert list(vvc_tmp.iterdir()) == []


def test_checkpoints_follow_the_umask(tmp_path):
    import logger
    previous = os.umask(0o022)
    try:
        logger.save_checkpoint(tmp_path / 'checkpoint.pth', {'epoch': 1})
        bitstream.write_atomic(tmp_path / 'o.s2d', b'x')
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / 'checkpoint.pth').stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / 'o.s2d').stat().st_mode) == 0o644


def test_the_atomic_writer_never_deletes_files_of_a_folder_it_may_not_replace(tmp_path):
    from video_io import atomic_path
    (tmp_path / 'pngs').mkdir()
    (tmp_path / 'pngs' / 'keep.png').write_bytes(b'x')
    with pytest.raises(OSError):
        with cli._new_folder(tmp_path / 'pngs') as folder:
            open(os.path.join(folder, '0000000.png'), 'wb').close()
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['keep.png', 'pngs']
    previous = os.umask(0o022)
    try:
        (tmp_path / 'pngs' / 'keep.png').unlink()
        with cli._new_folder(tmp_path / 'pngs'):       # an empty folder is replaced, with the umask's permissions
            pass
        with atomic_path(tmp_path / 'a.bin') as first, atomic_path(tmp_path / 'a.bin') as second:
            assert first != second                      # unique within the process
            first.write_bytes(b'1')
            second.write_bytes(b'2')
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / 'pngs').stat().st_mode) == 0o755
    assert (tmp_path / 'a.bin').read_bytes() == b'1'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.bin', 'pngs']


def test_log_txt_has_each_epoch_once_after_a_resume(tmp_path):
    import logger
    first = logger.Logger(tmp_path)
    for epoch in range(3):
        first.log_iter(epoch, {'l1': 1.0}, {})
        first.log_epoch(epoch, epoch * 10)
    first.log_text('a note after epoch 2')
    first.close()
    resumed = logger.Logger(tmp_path)      # the last checkpoint was epoch 1: training resumes at epoch 2
    resumed.log_iter(20, {'l1': 0.5}, {})
    resumed.log_epoch(2, 20)
    resumed.close()
    epochs = [line.split()[1] for line in (tmp_path / 'log.txt').read_text().splitlines() if line.startswith('epoch')]
    assert epochs == ['0000', '0001', '0002']
    assert 'l1 0.50000' in (tmp_path / 'log.txt').read_text()


def test_library_encoder_rejects_bad_frame_rates(checkpoint, frames):
    encoder = Encoder(checkpoint)
    for fps in (float('inf'), float('nan'), 0.0001, 0, -1, 5000):
        with pytest.raises(ValueError, match='fps'):
            encoder.encode(frames[:1], fps=fps)
