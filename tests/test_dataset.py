"""frames_dataset on real footage: every entry type, lazy reads, augmentation, vertex labels, bad files."""
import logging
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from frames_dataset import DatasetRepeater, FramesDataset, VideoReadError, group_weights, open_frames, to_tensor

NUM = 12  # frames per derived test clip


@pytest.fixture(scope='module')
def reference_frames(sample_video):
    """The first NUM frames of the bundled clip, decoded once: uint8 (NUM, 256, 256, 3)."""
    return np.stack(list(open_frames(sample_video))[:NUM])


def resized_frames(path, size):
    """Every frame of the entry ``path`` as float32 (3, h, w) tensors in [0, 1], resized to ``size`` = (h, w)."""
    return [to_tensor(frame, size) for frame in open_frames(path)]


def transcode(source, target, *args):
    """ffmpeg (imageio-ffmpeg binary): the first NUM frames of ``source`` into ``target``."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-v', 'error', '-y', '-i', str(source), '-frames:v', str(NUM),
                    '-an', *args, str(target)], check=True, timeout=120)
    return target


@pytest.fixture(scope='module')
def formats_root(tmp_path_factory, sample_video, reference_frames):
    """A data root whose train/ holds the real clip as mp4, mov, avi, webm, gif, a folder of PNG frames and a PNG
    strip; test/ holds the bundled mp4."""
    root = tmp_path_factory.mktemp('formats')
    train = root / 'train'
    train.mkdir()
    (root / 'test').mkdir()
    shutil.copy(sample_video, root / 'test' / 'head04.mp4')
    shutil.copy(sample_video, train / 'a_mp4.mp4')
    transcode(sample_video, train / 'b_mov.mov', '-c:v', 'libx264', '-crf', '12')
    transcode(sample_video, train / 'c_avi.avi', '-c:v', 'mpeg4', '-q:v', '2')
    transcode(sample_video, train / 'd_webm.webm', '-c:v', 'libvpx-vp9', '-crf', '20', '-b:v', '0', '-deadline',
              'realtime', '-cpu-used', '8')
    transcode(sample_video, train / 'e_gif.gif', '-vf', 'split[a][b];[a]palettegen[p];[b][p]paletteuse')
    folder = train / 'f_folder'
    folder.mkdir()
    for i, frame in enumerate(reference_frames):
        Image.fromarray(frame).save(folder / f'{i:05d}.png')
    Image.fromarray(np.concatenate(list(reference_frames), axis=1)).save(train / 'g_strip.png')
    (train / 'notes.txt').write_text('not a video: must be ignored')
    return root


def test_every_format_reads_the_real_frames(formats_root, reference_frames):
    expected_error = {'a_mp4': 0.0, 'f_folder': 0.0, 'g_strip': 0.0, 'b_mov': 2.0, 'c_avi': 3.0, 'd_webm': 2.5,
                      'e_gif': 3.5}  # measured 1.0, 1.5, 1.3, 1.9
    dataset = FramesDataset(formats_root, frame_shape=(256, 256, 3), is_train=True)
    names = sorted(p.name for p in dataset.entries)
    assert names == ['a_mp4.mp4', 'b_mov.mov', 'c_avi.avi', 'd_webm.webm', 'e_gif.gif', 'f_folder', 'g_strip.png']
    for path in dataset.entries:
        reader = open_frames(path, (256, 256, 3))
        count = NUM if path.stem != 'a_mp4' else 60
        assert reader.num_frames == count, path
        frames = np.stack(reader.read([NUM - 1, 0, 5]))
        error = np.abs(frames.astype(float) - reference_frames[[NUM - 1, 0, 5]]).mean()
        assert error <= expected_error[path.stem], (path.name, error)


def test_lazy_reads_match_sequential_decoding(formats_root):
    for path in sorted((formats_root / 'train').glob('*.*')):
        if path.suffix in ('.txt', '.png'):
            continue
        reader = open_frames(path)
        every = list(reader)
        picks = [len(every) - 1, 2, 2, 7, 0]
        for index, frame in zip(picks, reader.read(picks)):
            np.testing.assert_array_equal(frame, every[index], err_msg=f'{path.name} frame {index}')


def test_items_shapes_ranges_and_resize(formats_root):
    dataset = FramesDataset(formats_root, frame_shape=(64, 64, 3), is_train=True, num_vertices=7,
                            augmentation_params={'flip_param': {'horizontal_flip': True, 'time_flip': True},
                                                 'jitter_param': {'brightness': 0.1, 'contrast': 0.1,
                                                                  'saturation': 0.1, 'hue': 0.05},
                                                 'crop_param': {'scale': [0.8, 1.0]}})
    assert len(dataset) == 7
    for item in (dataset[i] for i in range(len(dataset))):
        for key in ('source', 'driving'):
            assert item[key].shape == (3, 64, 64) and item[key].dtype == torch.float32
            assert 0.0 <= item[key].min() and item[key].max() <= 1.0 and item[key].std() > 0.05
        assert item['vertices'].shape == (7, 2) and item['vertex_confidence'].shape == (7,)
        assert not item['vertex_confidence'].any()
    batch = next(iter(torch.utils.data.DataLoader(DatasetRepeater(dataset, 3), batch_size=4, shuffle=True)))
    assert batch['driving'].shape == (4, 3, 64, 64) and len(batch['name']) == 4
    assert len(DatasetRepeater(dataset, 3)) == 21


GROUPS = {'close_up': ['face', 'head'], 'upper_body': ['half', 'ted'], 'full_body': ['full']}


def test_sampling_groups_draw_each_group_equally_often():
    names = [f'head{i:02d}' for i in range(40)] + [f'face{i:02d}' for i in range(20)] + ['half01', 'half02', 'ted06'] \
        + ['full02', 'full04']
    weights = group_weights(names, GROUPS)
    assert weights.sum() == pytest.approx(1)
    for part in (weights[:60], weights[60:63], weights[63:]):  # close-ups, upper bodies, full bodies
        assert part.sum() == pytest.approx(1 / 3)
    repeater = DatasetRepeater(list(names), num_repeats=6, weights=weights)
    drawn = [repeater[i] for i in range(len(repeater))]
    assert len(drawn) == 6 * len(names)  # the epoch length does not change
    per_clip = {name: drawn.count(name) for name in names}
    for prefixes in GROUPS.values():  # 130 draws per group, up to rounding; equal within a group, up to one
        group = [count for name, count in per_clip.items() if any(name.startswith(p) for p in prefixes)]
        assert abs(sum(group) - 130) <= 2 and max(group) - min(group) <= 1
    assert per_clip['ted06'] >= 43 and per_clip['head00'] <= 3  # the lone TED clip: 1/9 of the epoch, a head 1/180
    unweighted = DatasetRepeater(list(names), num_repeats=2)
    assert sorted(unweighted[i] for i in range(len(unweighted))) == sorted(names * 2)


def test_sampling_groups_reject_unmatched_clips_and_empty_groups(tiny_config):
    from train import make_datasets
    tiny_config['dataset_params']['sampling_groups'] = {'heads': ['head']}  # the bundled full01 matches no group
    with pytest.raises(ValueError, match="clip 'full01' matches 0 of"):
        make_datasets(tiny_config)
    tiny_config['dataset_params']['sampling_groups'] = {'heads': ['head'], 'bodies': ['full']}
    train_set, _ = make_datasets(tiny_config)
    assert sorted(train_set[i]['name'] for i in range(len(train_set))) == \
        sorted(['full01', 'head04'] * tiny_config['train_params']['num_repeats'])
    with pytest.raises(ValueError, match="clip 'dance01' matches 0 of dataset_params.sampling_groups"):
        group_weights(['head01', 'dance01'], GROUPS)
    with pytest.raises(ValueError, match=r"sampling_groups \['full_body'\] match no training clip"):
        group_weights(['head01', 'half01'], GROUPS)
    with pytest.raises(ValueError, match='matches 2 of'):
        group_weights(['head01'], {'a': ['he'], 'b': ['head']})
    with pytest.raises(ValueError, match='weights must be 2 non-negative numbers'):
        DatasetRepeater(['a', 'b'], 3, weights=[1, -1])


def test_test_split_is_deterministic_and_read_clip_is_evenly_spaced(formats_root, reference_frames):
    dataset = FramesDataset(formats_root, frame_shape=(256, 256, 3), is_train=False)
    assert [p.name for p in dataset.entries] == ['head04.mp4']
    first, second = dataset[0], dataset[0]
    assert torch.equal(first['driving'], second['driving'])
    assert torch.equal(first['source'], torch.from_numpy(reference_frames[0]).permute(2, 0, 1).float() / 255)
    clip = dataset.read_clip(0, num_frames=4)
    assert clip['frame_indices'].tolist() == [0, 20, 39, 59]
    assert clip['video'].shape == (4, 3, 256, 256)
    frames = resized_frames(formats_root / 'test' / 'head04.mp4', (64, 64))
    assert len(frames) == 60 and frames[20].shape == (3, 64, 64)
    small = F.interpolate(clip['video'][1:2], size=(64, 64), mode='bilinear', antialias=True)[0]
    assert (frames[20] - small).abs().max() < 1e-5


def test_flat_folder_is_used_for_both_splits(samples_dir):
    train = FramesDataset(samples_dir, frame_shape=(64, 64, 3), is_train=True)
    test = FramesDataset(samples_dir, frame_shape=(64, 64, 3), is_train=False)
    assert [p.name for p in train.entries] == [p.name for p in test.entries] == ['full01.mp4', 'head04.mp4']


def test_id_sampling_groups_every_entry_type(tmp_path, sample_video, reference_frames):
    train = tmp_path / 'train'
    train.mkdir()
    (tmp_path / 'test').mkdir()
    shutil.copy(sample_video, train / 'spk1#0#60.mp4')
    Image.fromarray(np.concatenate(list(reference_frames[:4]), axis=1)).save(train / 'spk1#60#64.png')
    folder = train / 'spk2#0#4'
    folder.mkdir()
    for i, frame in enumerate(reference_frames[:4]):
        Image.fromarray(frame).save(folder / f'{i}.png')
    dataset = FramesDataset(tmp_path, frame_shape=(64, 64, 3), id_sampling=True, is_train=True)
    assert len(dataset) == 2
    torch.manual_seed(0)
    names = {dataset[0]['name'] for _ in range(40)}
    assert names == {'spk1#0#60', 'spk1#60#64'}
    assert dataset[1]['name'] == 'spk2#0#4'
    assert len(FramesDataset(tmp_path, frame_shape=(64, 64, 3), id_sampling=False, is_train=True)) == 3


def test_truncated_video_names_the_file_or_is_skipped(tmp_path, sample_video, caplog):
    root = tmp_path / 'data'
    root.mkdir()
    shutil.copy(sample_video, root / 'good.mp4')
    data = sample_video.read_bytes()
    (root / 'broken.mp4').write_bytes(data[:len(data) // 2])
    (root / 'header_only.mp4').write_bytes(data[:200])
    for name in ('broken.mp4', 'header_only.mp4'):
        with pytest.raises(VideoReadError, match=name):
            open_frames(root / name).read([0])
    strict = FramesDataset(root, frame_shape=(64, 64, 3), is_train=True)
    with pytest.raises(VideoReadError, match='broken.mp4'):
        strict[strict.entries.index(root / 'broken.mp4')]
    lenient = FramesDataset(root, frame_shape=(64, 64, 3), is_train=True, skip_bad_videos=True)
    with caplog.at_level(logging.WARNING, logger='frames_dataset'):
        names = {lenient[i]['name'] for i in range(len(lenient))}
    assert names == {'good'}
    assert 'broken.mp4' in caplog.text and 'header_only.mp4' in caplog.text


def _labels_root(tmp_path, sample_video, flip_index):
    """Flat root with the real clip and a label file: constant asymmetric vertices, confidence 1 except vertex 3."""
    shutil.copy(sample_video, tmp_path / 'head04.mp4')
    (tmp_path / 'vertices').mkdir()
    base = np.array([[-0.5, -0.2], [0.5, -0.2], [0.0, 0.1], [-0.9, 0.8]], dtype=np.float32)
    confidence = np.array([1, 1, 1, 0], dtype=np.float32)
    arrays = {'vertices': np.repeat(base[None], 60, axis=0), 'confidence': np.repeat(confidence[None], 60, axis=0),
              'teacher': np.array('test'), 'layout': np.array('4 points')}
    if flip_index is not None:
        arrays['flip_index'] = np.asarray(flip_index, dtype=np.int64)
    np.savez(tmp_path / 'vertices' / 'head04.npz', **arrays)
    return base, confidence


def _is_mirrored(item, frames):
    """Whether the item's driving frame is closer to a mirrored frame of the clip than to any unmirrored one."""
    plain = (frames - item['driving']).abs().mean(dim=(1, 2, 3)).min()
    mirrored = (frames.flip(-1) - item['driving']).abs().mean(dim=(1, 2, 3)).min()
    return bool(mirrored < plain)


def test_vertex_labels_follow_the_horizontal_flip(tmp_path, sample_video):
    base, confidence = _labels_root(tmp_path, sample_video, flip_index=[1, 0, 2, 3])
    dataset = FramesDataset(tmp_path, frame_shape=(64, 64, 3), is_train=True, num_vertices=4,
                            augmentation_params={'flip_param': {'horizontal_flip': True}})
    frames = torch.stack(resized_frames(sample_video, (64, 64)))
    mirrored_base = base[[1, 0, 2, 3]] * np.array([-1, 1], dtype=np.float32)
    torch.manual_seed(0)
    seen = set()
    for _ in range(16):
        item = dataset[0]
        mirrored = _is_mirrored(item, frames)
        seen.add(mirrored)
        np.testing.assert_allclose(item['vertices'].numpy(), mirrored_base if mirrored else base)
        np.testing.assert_array_equal(item['vertex_confidence'].numpy(), confidence)
    assert seen == {True, False}


def test_labelled_videos_without_flip_index_are_not_flipped(tmp_path, sample_video):
    base, _ = _labels_root(tmp_path, sample_video, flip_index=None)
    dataset = FramesDataset(tmp_path, frame_shape=(64, 64, 3), is_train=True, num_vertices=4,
                            augmentation_params={'flip_param': {'horizontal_flip': True}})
    frames = torch.stack(resized_frames(sample_video, (64, 64)))
    torch.manual_seed(0)
    for _ in range(10):
        item = dataset[0]
        assert not _is_mirrored(item, frames)
        np.testing.assert_allclose(item['vertices'].numpy(), base)


def test_vertex_labels_follow_the_crop(tmp_path, reference_frames):
    """A one-frame clip: colours sampled at the labelled points agree before and after a random crop."""
    folder = tmp_path / 'still'
    folder.mkdir()
    Image.fromarray(reference_frames[0]).save(folder / '0.png')
    (tmp_path / 'vertices').mkdir()
    grid = np.stack(np.meshgrid(np.linspace(-0.9, 0.9, 12), np.linspace(-0.9, 0.9, 12)), -1).reshape(1, -1, 2)
    np.savez(tmp_path / 'vertices' / 'still.npz', vertices=grid.astype(np.float32),
             confidence=np.ones(grid.shape[:2], np.float32), flip_index=np.arange(grid.shape[1]))
    dataset = FramesDataset(tmp_path, frame_shape=(128, 128, 3), is_train=True, num_vertices=grid.shape[1],
                            augmentation_params={'crop_param': {'scale': [0.4, 0.6]}})
    original = torch.from_numpy(reference_frames[0]).permute(2, 0, 1).float()[None] / 255
    original = F.interpolate(original, size=(128, 128), mode='bilinear', antialias=True)

    def sample(image, points):
        return F.grid_sample(image, points[None, None], align_corners=True)[0, :, 0]  # (3, N)

    torch.manual_seed(1)
    for _ in range(5):
        item = dataset[0]
        inside = item['vertex_confidence'] > 0
        assert 0 < inside.sum() < grid.shape[1]  # some points fall outside a 40-60 % crop
        before = sample(original, torch.from_numpy(grid[0]).float())[:, inside]
        after = sample(item['driving'][None], item['vertices'])[:, inside]
        ignored = sample(item['driving'][None], torch.from_numpy(grid[0]).float())[:, inside]
        assert (after - before).abs().mean() < 0.03
        assert (ignored - before).abs().mean() > 2 * (after - before).abs().mean()


def test_label_shape_mismatch_is_a_clear_error(tmp_path, sample_video):
    _labels_root(tmp_path, sample_video, flip_index=None)
    dataset = FramesDataset(tmp_path, frame_shape=(64, 64, 3), is_train=True, num_vertices=543)
    with pytest.raises(VideoReadError, match='num_vertices'):
        dataset[0]


def test_frame_cache_gives_the_same_items(samples_dir):
    kwargs = dict(frame_shape=(64, 64, 3), is_train=False)
    plain = FramesDataset(samples_dir, **kwargs)
    cached = FramesDataset(samples_dir, cache_frames=True, **kwargs)
    for index in range(len(plain)):
        for _ in range(2):  # the second read is served from memory
            a, b = plain[index], cached[index]
            assert (a['source'] - b['source']).abs().max() <= 0.5 / 255 + 1e-6
            assert (a['driving'] - b['driving']).abs().max() <= 0.5 / 255 + 1e-6
        clip_a, clip_b = plain.read_clip(index, 5), cached.read_clip(index, 5)
        assert clip_a['frame_indices'].tolist() == clip_b['frame_indices'].tolist()
        assert (clip_a['video'] - clip_b['video']).abs().max() <= 0.5 / 255 + 1e-6
    assert len(cached.cache) == len(plain)


def test_validation_split_is_carved_from_the_training_clips(formats_root, reference_frames):
    train = FramesDataset(formats_root, frame_shape=(64, 64, 3), is_train=True, exclude_names=('a_mp4', 'f_folder'))
    stems = {p.stem if p.is_file() else p.name for p in train.entries}
    assert stems == {'b_mov', 'c_avi', 'd_webm', 'e_gif', 'g_strip'}
    validation = FramesDataset(formats_root, frame_shape=(256, 256, 3), is_train=False, split='train',
                               names=['a_mp4', 'f_folder'])
    assert [p.name for p in validation.entries] == ['a_mp4.mp4', 'f_folder']
    clip = validation.read_clip(1, num_frames=3)  # deterministic, unaugmented frames of the held-out clip
    np.testing.assert_allclose(clip['video'][0].permute(1, 2, 0).numpy() * 255, reference_frames[0], atol=0.5)
    with pytest.raises(FileNotFoundError, match=r"\['nope'\] are not in"):
        FramesDataset(formats_root, is_train=False, split='train', names=['a_mp4', 'nope'])
