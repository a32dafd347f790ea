"""tools/prepare_dataset.py and tools/crop.py on real footage (the bundled sample clips placed in wider frames)."""
import csv
import subprocess
import sys
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest

from tools.crop import CropBox, NoPersonError, apply_crop, detect_pose, find_person, person_crop_box
from tools.prepare_dataset import main as prepare_main, split_from_readme
from video_io import VideoReadError, iter_frames, probe, read_frames, write_video

NUM = 16  # frames of each derived test clip
# Where the real 256x256 sample clips are pasted into wider grey frames (x, y, frame width, frame height).
PLACEMENT = {'head04': (150, 40, 448, 320), 'full01': (20, 60, 400, 360)}


def _inside(box, x, y, margin=0.0):
    """True where pixel coordinates (x, y) lie inside ``box``, at least ``margin`` pixels from its edges."""
    return ((x >= box.x0 + margin) & (x <= box.x0 + box.side - 1 - margin)
            & (y >= box.y0 + margin) & (y <= box.y0 + box.side - 1 - margin))


def _rows(path):
    with open(path, newline='') as handle:
        return {row['name']: row for row in csv.DictReader(handle)}


def _placed(samples_dir, name):
    frames, fps = read_frames(samples_dir / f'{name}.mp4', range(NUM))
    x, y, width, height = PLACEMENT[name]
    canvas = np.full((len(frames), height, width, 3), 118, np.uint8)
    canvas[:, y:y + 256, x:x + 256] = frames
    return canvas, fps


@pytest.fixture(scope='module')
def raw_folder(tmp_path_factory, samples_dir):
    """Raw input videos: the real sample clips pasted off-centre into wider (non-square) frames at 30 fps."""
    folder = tmp_path_factory.mktemp('raw')
    for name in PLACEMENT:
        frames, fps = _placed(samples_dir, name)
        write_video(folder / f'{name}_camera.mp4', frames, fps)
    return folder


@pytest.fixture(scope='module')
def prepared(tmp_path_factory, raw_folder):
    """The raw folder prepared at 128x128, 15 fps (from 30), at most 6 frames, with previews."""
    out = tmp_path_factory.mktemp('prepared')
    code = prepare_main(['--input', str(raw_folder), '--out', str(out), '--size', '128', '--fps', '15',
                         '--max-frames', '6', '--short-names', '--test-names', 'head04', '--preview'])
    assert code == 0
    return out


def test_crop_box_contains_the_person_with_margin_and_stays_fixed(prepared, raw_folder):
    rows = _rows(prepared / 'metadata.csv')
    assert set(rows) == {'head04', 'full01'}
    for name, row in rows.items():
        box = CropBox(int(row['crop_x0']), int(row['crop_y0']), int(row['crop_side']))
        source = raw_folder / f'{name}_camera.mp4'
        indices = range(int(row['frame_start']), int(row['frame_end']), 2)
        frames = [frame for _, frame in iter_frames(source, indices)]
        landmarks = detect_pose(frames)
        x, y, visibility = landmarks[..., 0], landmarks[..., 1], landmarks[..., 2]
        width, height = frames[0].shape[1], frames[0].shape[0]
        seen = (visibility >= 0.5) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        assert seen.sum() >= 10 * len(frames)
        margin = 0.02 * box.side
        near_frame_edge = (x < margin) | (x > width - 1 - margin) | (y < margin) | (y > height - 1 - margin)
        assert _inside(box, x[seen], y[seen]).all(), name
        assert _inside(box, x[seen & ~near_frame_edge], y[seen & ~near_frame_edge], margin).all(), name
        # The box is centred on the pasted real clip (the grey surround holds no person).
        px, py = PLACEMENT[name][:2]
        assert abs(box.x0 + box.side / 2 - (px + 128)) < 0.25 * box.side
        assert abs(box.y0 + box.side / 2 - (py + 128)) < 0.25 * box.side
        # One fixed box: every output frame is that box's crop of the source frame (lossless output).
        output, _ = read_frames(prepared / row['partition'] / f'{name}.mp4')
        assert len(output) == len(frames)
        for frame, out in zip(frames, output):
            np.testing.assert_array_equal(apply_crop(frame, box, 128), out)


def test_outputs_have_the_requested_size_frame_count_and_fps(prepared):
    rows = _rows(prepared / 'metadata.csv')
    assert rows['head04']['partition'] == 'test' and rows['full01']['partition'] == 'train'
    for name, row in rows.items():
        info = probe(prepared / row['partition'] / f'{name}.mp4')
        assert (info.width, info.height) == (128, 128)
        assert info.fps == Fraction(15) and Fraction(row['fps']) == 15
        assert int(row['num_frames']) == 6 and len(read_frames(prepared / row['partition'] / f'{name}.mp4')[0]) == 6
        assert (int(row['frame_start']), int(row['frame_end'])) == (0, 11)  # source frames 0, 2, ..., 10
        assert (prepared / 'preview' / f'{name}.png').stat().st_size > 1000
    report = _rows(prepared / 'report.csv')
    assert {r['status'] for r in report.values()} == {'written'}


def test_metadata_rebuilds_the_set_exactly(prepared, tmp_path):
    code = prepare_main(['--from-metadata', str(prepared / 'metadata.csv'), '--out', str(tmp_path), '--size', '128'])
    assert code == 0
    for name, row in _rows(prepared / 'metadata.csv').items():
        rebuilt, fps = read_frames(tmp_path / row['partition'] / f'{name}.mp4')
        original, _ = read_frames(prepared / row['partition'] / f'{name}.mp4')
        np.testing.assert_array_equal(rebuilt, original)
        assert fps == Fraction(row['fps'])
        assert _rows(tmp_path / 'metadata.csv')[name]['crop_side'] == row['crop_side']


def test_resume_skips_finished_clips(prepared, raw_folder):
    before = {p: p.stat().st_mtime_ns for p in prepared.glob('*/*.mp4')}
    code = prepare_main(['--input', str(raw_folder), '--out', str(prepared), '--size', '128', '--fps', '15',
                         '--max-frames', '6', '--short-names', '--test-names', 'head04'])
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in prepared.glob('*/*.mp4')} == before
    assert {r['status'] for r in _rows(prepared / 'report.csv').values()} == {'done'}
    assert not list(prepared.rglob('.*.tmp*'))


def test_bad_inputs_get_clear_messages_and_leave_other_clips_alone(tmp_path, raw_folder, capsys):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    (inputs / 'good.mp4').write_bytes((raw_folder / 'head04_camera.mp4').read_bytes())
    (inputs / 'unreadable.mp4').write_text('this is not a video')
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-v', 'error', '-f', 'lavfi', '-i', 'color=c=gray:s=64x64:r=25',
                    '-frames:v', '0', '-c:v', 'libx264', str(inputs / 'zero.mp4')], check=True, timeout=60)
    rng = np.random.default_rng(0)
    write_video(inputs / 'noise.mp4', rng.integers(0, 256, (12, 96, 128, 3), dtype=np.uint8), 25)
    write_video(inputs / 'flat.mp4', np.full((12, 96, 128, 3), 90, np.uint8), 25)
    out = tmp_path / 'out'
    code = prepare_main(['--input', str(inputs), '--out', str(out), '--size', '64', '--max-frames', '8',
                         '--test-names', 'good'])
    assert code == 1
    report = _rows(out / 'report.csv')
    assert report['good']['status'] == 'written'
    assert report['unreadable']['status'] == 'unreadable' and 'not a readable video' in report['unreadable']['message']
    assert report['zero']['status'] == 'unreadable' and 'zero-frame' in report['zero']['message']
    for name in ('noise', 'flat'):
        assert report[name]['status'] == 'no-person' and 'no person' in report[name]['message']
    printed = capsys.readouterr().out
    assert 'no-person: noise' in printed and 'unreadable: zero' in printed
    assert sorted(p.name for p in out.glob('*/*.mp4')) == ['good.mp4']
    assert set(_rows(out / 'metadata.csv')) == {'good'}


def test_no_person_and_unreadable_errors_from_the_crop_api(tmp_path):
    with pytest.raises(NoPersonError, match='no person'):
        find_person(np.full((6, 64, 64, 3), 200, np.uint8))
    (tmp_path / 'x.mp4').write_text('junk')
    with pytest.raises(VideoReadError, match='not a readable video'):
        person_crop_box(tmp_path / 'x.mp4')


def test_person_crop_box_on_a_path_matches_frames_and_pads_outside(raw_folder, samples_dir):
    path = raw_folder / 'full01_camera.mp4'
    box = person_crop_box(path, max_frames=4)
    frames, _ = read_frames(path, range(4))
    assert box == person_crop_box(list(frames), max_frames=4)
    # A box past the frame's corner: the inside part is copied, the rest is black.
    frame = frames[0]
    corner = CropBox(-10, -20, 60)
    crop = apply_crop(frame, corner, 60)
    assert (crop[:20] == 0).all() and (crop[:, :10] == 0).all()
    np.testing.assert_array_equal(crop[20:, 10:], frame[:40, :50])


def test_ted_metadata_csv_uses_local_videos_ranges_and_boxes(tmp_path, raw_folder):
    videos = tmp_path / 'videos'
    videos.mkdir()
    (videos / 'talkA.mp4').write_bytes((raw_folder / 'head04_camera.mp4').read_bytes())  # 448x320, 30 fps
    table = tmp_path / 'ted.csv'
    table.write_text('video_id,start,end,bbox,fps,width,height,partition\n'
                     'talkA#000001#000004,0,0,76-20-376-320,10.0,896,640,train\n'  # MRAA-style: range in the id
                     'talkA,2,4,150-40-406-296,,,,test\n'
                     'missing#000001#000004,0,0,0-0-10-10,10.0,10,10,train\n')
    out = tmp_path / 'ted'
    code = prepare_main(['--ted-csv', str(table), '--videos', str(videos), '--out', str(out), '--size', '64'])
    rows = _rows(out / 'metadata.csv')
    # Row 1: frames 1..3 at 10 fps = source frames 3..11 at 30 fps; bbox halved (896x640 -> 448x320), square 150.
    first = rows['talkA#000001#000004']
    assert (int(first['frame_start']), int(first['frame_end']), int(first['num_frames'])) == (3, 12, 9)
    assert (int(first['crop_x0']), int(first['crop_y0']), int(first['crop_side'])) == (38, 10, 150)
    second = rows['talkA#000002#000004']
    assert second['partition'] == 'test' and int(second['num_frames']) == 2
    assert (int(second['crop_x0']), int(second['crop_y0']), int(second['crop_side'])) == (150, 40, 256)
    source = [frame for _, frame in iter_frames(videos / 'talkA.mp4', [2, 3])]
    np.testing.assert_array_equal(read_frames(out / 'test' / 'talkA#000002#000004.mp4')[0],
                                  [apply_crop(f, CropBox(150, 40, 256), 64) for f in source])
    report = _rows(out / 'report.csv')
    assert code == 1 and report['missing#000001#000004']['status'] == 'unreadable'
    assert 'no local video' in report['missing#000001#000004']['message']


def test_split_sources(tmp_path, raw_folder):
    readme = tmp_path / 'README.md'
    readme.write_text('# data\n\n- **test** (2 clips): `head04`, `ted01`.\n- **train**: every other clip, except '
                      '`full11` (soccer).\n\n## Rights\n`other`\n')
    assert split_from_readme(readme) == ({'head04', 'ted01'}, {'full11'})
    split = tmp_path / 'split.csv'
    split.write_text('name,partition\nhead04,exclude\nfull01,test\n')
    out = tmp_path / 'out'
    assert prepare_main(['--input', str(raw_folder), '--out', str(out), '--size', '32', '--max-frames', '2',
                         '--short-names', '--split', str(split)]) == 0
    assert [p.relative_to(out).as_posix() for p in sorted(out.glob('*/*.mp4'))] == ['test/full01.mp4']
    assert _rows(out / 'report.csv')['head04']['status'] == 'excluded'


def test_command_line_reports_missing_split(tmp_path, raw_folder, repo_root):
    result = subprocess.run([sys.executable, '-m', 'tools.prepare_dataset', '--input', str(raw_folder), '--out',
                             str(tmp_path)], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and 'no split given' in result.stderr


def test_one_command_builds_clips_and_vertex_labels(samples_dir, tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    (raw / 'head04.mp4').symlink_to(samples_dir / 'head04.mp4')
    out = tmp_path / 'out'
    assert prepare_main(['--input', str(raw), '--out', str(out), '--size', '64', '--max-frames', '6',
                         '--test-names', 'head04', '--vertices']) == 0
    with np.load(out / 'vertices' / 'head04.npz') as labels:
        assert labels['vertices'].shape == (6, 543, 2) and labels['confidence'].shape == (6, 543)
        assert str(labels['teacher']) == 'holistic'
    with pytest.raises(SystemExit):
        prepare_main(['--input', str(raw), '--out', str(tmp_path / 'png'), '--format', 'png', '--vertices'])
