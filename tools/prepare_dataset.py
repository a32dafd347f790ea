"""Raw human videos -> a TED-style training set: ``OUT/{train,test}/<name>.mp4`` square person-centred crops.

Inputs (one of):

- ``--input DIR``: a folder of videos (any size, fps and container PyAV reads). Each video becomes one clip named
  after its file stem (``--short-names``: the part before the first ``_``, e.g. ``head04_retalking.mp4`` ->
  ``head04``). The crop box is found by ``tools.crop`` (MediaPipe Pose). Split: ``--split CSV`` (columns ``name,
  partition`` with partition ``train``, ``test`` or ``exclude``; videos not listed are left out), or
  ``--test-names a,b`` (+ ``--exclude c``; the rest is train), or, without either, the split written in
  ``README.md`` of the folder or its parent (the ``../shared/data`` layout: the ``**test**`` bullet lists the test
  clips, names after ``except`` in the ``**train**`` bullet are excluded).
- ``--ted-csv CSV --videos DIR``: MRAA TED-Talk metadata (``video_id,start,end,bbox,partition`` and optionally
  ``fps,width,height``) pointing at local files ``DIR/<youtube id>.<ext>`` (``video_id`` = ``<youtube id>#...``).
  ``start``/``end`` are frame indices at the CSV's ``fps`` (the source fps without that column); rows with
  ``start = end = 0`` whose ``video_id`` is ``<id>#<start>#<end>`` (MRAA's published ``ted-metadata.csv``) take the
  range from the id. ``bbox`` is ``left-top-right-bottom`` in a ``width`` x ``height`` frame (the source frame
  without those columns), scaled to the local file and squared around its centre; no detection runs. The clip is
  named ``<video_id>`` (when it carries the range) or ``<video_id>#<start 06d>#<end 06d>``.
- ``--from-metadata OUT/metadata.csv``: rebuild a set exactly from a metadata file written by this tool.

Output:

- ``OUT/{train,test}/<name>.mp4``: ``--size`` x ``--size`` RGB, H.264 RGB (``libx264rgb``) lossless (``--crf 0``,
  default) or visually lossless (``--crf`` <= 12); or with ``--format png`` a folder ``<name>/0000000.png ...``.
- ``OUT/metadata.csv``: per clip the source file, its size and fps, the frame range (``frame_start``,
  ``frame_end``, output frame k = source frame ``frame_start + round(k * source_fps / fps)``), ``num_frames``,
  the crop box in source pixels (``crop_x0, crop_y0, crop_side``; parts outside the frame are black padding), the
  output ``size``, ``fps`` (exact fraction), format and crf: enough to rebuild the set (``--from-metadata``).
- ``OUT/report.csv``: every input with its status (``written``, ``done`` = already written by an earlier run,
  ``no-person``, ``unreadable``, ``excluded``, ``not-in-split``) and a message. Problems are also printed.
- ``--preview``: ``OUT/preview/<name>.png``, a contact sheet of 8 source frames with the crop box (green) and the
  pose landmarks (red).

Resume: a clip whose output exists with a metadata row of the same settings is skipped; outputs and metadata are
written atomically (temp file + ``os.replace``), so an interrupted run loses at most the clip in progress.

Example (the CPU training set from ../shared/data, see README):
    python -m tools.prepare_dataset --input ../shared/data/clips --out data/humans256 --size 256 \
        --max-frames 300 --fps 30 --short-names --preview
"""
import argparse
import csv
import math
import re
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tools.crop import CropBox, NoPersonError, apply_crop, detect_pose, find_person
from video_io import (VideoReadError, atomic_path, iter_frames, probe, resample_indices, write_png_folder,
                            write_video)

VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.flv', '.wmv', '.gif')
METADATA_FIELDS = ('name', 'partition', 'source', 'source_width', 'source_height', 'source_fps', 'frame_start',
                   'frame_end', 'num_frames', 'fps', 'crop_x0', 'crop_y0', 'crop_side', 'size', 'format', 'crf',
                   'box_from', 'person_fraction', 'settings')
REPORT_FIELDS = ('name', 'source', 'partition', 'status', 'message')
PREVIEW_FRAMES = 8


@dataclass
class ClipJob:
    """One output clip to build: ``source`` video, source frame range [start, end) (end None: to the end),
    a fixed ``box`` (None: detect the person), and for a rebuild from metadata the recorded ``num_frames`` and
    output ``fps`` (None: use the command line's ``--max-frames`` / ``--fps``)."""
    name: str
    partition: str
    source: Path
    start: int = 0
    end: int = None
    box: CropBox = None
    num_frames: int = None
    fps: Fraction = None


def _clip_name(path, short_names):
    return path.stem.split('_')[0] if short_names else path.stem


def read_split_csv(path):
    """``name,partition`` CSV -> {name: partition}; partition is train, test or exclude. Raises ValueError."""
    split = {}
    with open(path, newline='') as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {'name', 'partition'} <= set(reader.fieldnames):
            raise ValueError(f"split file '{path}' needs the columns name,partition (got {reader.fieldnames})")
        for row in reader:
            partition = row['partition'].strip()
            if partition not in ('train', 'test', 'exclude'):
                raise ValueError(f"split file '{path}': partition of '{row['name']}' is '{partition}'; "
                                 f"use train, test or exclude")
            split[row['name'].strip()] = partition
    return split


def split_from_readme(path):
    """The split written in a ``../shared/data``-style README -> (test names, excluded names).

    The bullet starting ``- **test**`` lists the test clips in backticks; in the ``- **train**`` bullet the names in
    backticks after ``except`` are excluded. Raises ValueError when the README has no such bullets."""
    text = Path(path).read_text()
    bullets = re.split(r'\n(?=- \*\*)', text)
    test = [b for b in bullets if b.startswith('- **test**')]
    train = [b for b in bullets if b.startswith('- **train**')]
    if not test:
        raise ValueError(f"'{path}' has no '- **test**' bullet listing the test clips; pass --split or --test-names")
    test_names = re.findall(r'`([^`]+)`', test[0].split('\n\n')[0])
    excluded = re.findall(r'`([^`]+)`', train[0].split('except', 1)[1].split('\n\n')[0]) \
        if train and 'except' in train[0] else []
    return set(test_names), set(excluded)


def jobs_from_folder(input_dir, split, test_names, excluded, short_names):
    """Clip jobs for every video in ``input_dir`` (sorted by name) -> (jobs, report rows of left-out videos)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise SystemExit(f"error: input folder '{input_dir}' does not exist")
    videos = sorted(p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SystemExit(f"error: no video ({', '.join(VIDEO_SUFFIXES)}) in '{input_dir}'")
    jobs, left_out, seen = [], [], {}
    for path in videos:
        name = _clip_name(path, short_names)
        if name in seen:
            raise SystemExit(f"error: '{path.name}' and '{seen[name].name}' both give the clip name '{name}'; "
                             f"rename one or drop --short-names")
        seen[name] = path
        keys = (name, path.stem)
        if split is not None:
            partition = next((split[k] for k in keys if k in split), None)
        else:
            partition = 'exclude' if any(k in excluded for k in keys) else \
                'test' if any(k in test_names for k in keys) else 'train'
        if partition is None:
            left_out.append(dict(name=name, source=str(path), partition='', status='not-in-split',
                                 message='not listed in the split file; left out'))
        elif partition == 'exclude':
            left_out.append(dict(name=name, source=str(path), partition='', status='excluded',
                                 message='excluded by the split'))
        else:
            jobs.append(ClipJob(name, partition, path))
    return jobs, left_out


def _find_video(videos_dir, video_id):
    matches = sorted(p for p in Path(videos_dir).glob(f'{glob_escape(video_id)}.*') if p.suffix.lower()
                     in VIDEO_SUFFIXES)
    return matches[0] if matches else None


def glob_escape(text):
    """Escape glob metacharacters ([, ], *, ?) in a file name part."""
    return re.sub(r'([\[\]*?])', r'[\1]', text)


def jobs_from_ted_csv(csv_path, videos_dir):
    """Clip jobs from MRAA TED-Talk metadata (see the module docstring) -> (jobs, report rows of missing videos)."""
    jobs, left_out = [], []
    with open(csv_path, newline='') as handle:
        reader = csv.DictReader(handle)
        needed = {'video_id', 'start', 'end', 'bbox', 'partition'}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise SystemExit(f"error: '{csv_path}' needs the columns {','.join(sorted(needed))} "
                             f"(got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            video_id = row['video_id'].strip()
            youtube_id = video_id.split('#')[0]
            source = _find_video(videos_dir, youtube_id)
            start, end = int(row['start']), int(row['end'])
            in_id = re.fullmatch(r'(.+)#(\d+)#(\d+)', video_id)
            if start == 0 and end == 0 and in_id:
                start, end = int(in_id.group(2)), int(in_id.group(3))
                name = video_id
            else:
                name = f'{video_id}#{start:06d}#{end:06d}'
            if source is None:
                left_out.append(dict(name=name, source=f'{videos_dir}/{youtube_id}.*', partition=row['partition'],
                                     status='unreadable', message=f"line {line}: no local video for '{youtube_id}' "
                                     f"in '{videos_dir}'; download it there or drop the row"))
                continue
            try:
                left, top, right, bottom = (int(v) for v in row['bbox'].split('-'))
            except ValueError:
                raise SystemExit(f"error: '{csv_path}' line {line}: bbox '{row['bbox']}' is not "
                                 f"left-top-right-bottom") from None
            info = probe(source)
            ref_w = float(row.get('width') or info.width)
            ref_h = float(row.get('height') or info.height)
            sx, sy = info.width / ref_w, info.height / ref_h
            left, right, top, bottom = left * sx, right * sx, top * sy, bottom * sy
            side = int(round(max(right - left, bottom - top)))
            box = CropBox(int(round((left + right - side) / 2)), int(round((top + bottom - side) / 2)), side)
            ref_fps = Fraction(row['fps']).limit_denominator(1000) if row.get('fps') else info.fps
            to_source = info.fps / ref_fps
            jobs.append(ClipJob(name, row['partition'].strip(), source, math.ceil(start * to_source),
                                math.ceil(end * to_source), box))
    return jobs, left_out


def jobs_from_metadata(metadata_path):
    """Clip jobs reproducing every row of a metadata.csv written by this tool (same source, range, box)."""
    jobs = []
    for row in _read_rows(metadata_path).values():
        box = CropBox(int(row['crop_x0']), int(row['crop_y0']), int(row['crop_side']))
        jobs.append(ClipJob(row['name'], row['partition'], Path(row['source']), int(row['frame_start']),
                            int(row['frame_end']), box, int(row['num_frames']), Fraction(row['fps'])))
    return jobs


def _read_rows(path):
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, newline='') as handle:
        return {row['name']: row for row in csv.DictReader(handle)}


def _write_rows(path, rows, fields):
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def _contact_sheet(thumbs, scale, landmarks, box):
    """8 source thumbnails with the crop box and the pose landmarks drawn -> (H, W, 3) uint8 image."""
    picks = np.linspace(0, len(thumbs) - 1, min(PREVIEW_FRAMES, len(thumbs))).round().astype(int)
    tiles = []
    for i in picks:
        tile = thumbs[i].copy()
        p0 = (int(round(box.x0 * scale)), int(round(box.y0 * scale)))
        p1 = (int(round((box.x0 + box.side) * scale)), int(round((box.y0 + box.side) * scale)))
        cv2.rectangle(tile, p0, p1, (0, 255, 0), 2)
        if landmarks is not None and not np.isnan(landmarks[i, 0, 0]):
            for x, y, vis in landmarks[i]:
                if vis >= 0.5:
                    cv2.circle(tile, (int(round(x * scale)), int(round(y * scale))), 2, (255, 0, 0), -1)
        cv2.putText(tile, f'#{i}', (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(tile)
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + 4], axis=1) for r in range(0, len(tiles), 4)]
    return np.concatenate(rows, axis=0)


def prepare_clip(job, out_dir, size, fps, max_frames, fmt='mp4', crf=0, margin=0.1, preview=False,
                 min_person_fraction=0.2):
    """Build one clip: detect the person (unless ``job.box``), crop, resize, write. Returns its metadata row (dict).

    Args:
        job: ``ClipJob``. out_dir: output root. size: output side (pixels). fps: resampling target (None: keep;
            ``job.fps`` overrides it). max_frames: frame cap (``job.num_frames`` overrides it). fmt: mp4 or png.
        crf: 0 lossless, <= 12 visually lossless. margin, min_person_fraction: see ``tools.crop.find_person``.
        preview: also write ``out_dir/preview/<name>.png``.
    Raises:
        VideoReadError: unreadable or zero-frame source. NoPersonError: no person in the clip.
    """
    info = probe(job.source)
    target = job.fps if job.fps is not None else fps
    cap = job.num_frames if job.num_frames is not None else max_frames
    _, out_fps = resample_indices(info.fps, target, job.start, job.end, cap)

    def frames():
        return iter_frames(job.source, resample_indices(info.fps, target, job.start, job.end, cap)[0])

    thumbs, scale = [], min(1.0, 240.0 / max(info.width, info.height))

    def detection_frames():
        for _, frame in frames():
            if preview:
                thumbs.append(cv2.resize(frame, (max(1, round(frame.shape[1] * scale)),
                                                 max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA))
            yield frame

    if job.box is None:
        track = find_person(detection_frames(), margin=margin, min_person_fraction=min_person_fraction)
        box, landmarks, fraction, box_from = track.box, track.landmarks, f'{track.person_fraction:.3f}', 'pose'
    else:
        box, box_from, fraction = job.box, 'given', ''
        landmarks = detect_pose(detection_frames()) if preview else None
    used = []

    def cropped():
        for index, frame in frames():
            used.append(index)
            yield apply_crop(frame, box, size)
    folder = Path(out_dir) / job.partition
    if fmt == 'png':
        count = write_png_folder(folder / job.name, cropped())
    else:
        count = write_video(folder / f'{job.name}.mp4', cropped(), out_fps, crf)
    if preview and thumbs:
        sheet = _contact_sheet(thumbs, scale, landmarks, box)
        with atomic_path(Path(out_dir) / 'preview' / f'{job.name}.png') as tmp:
            tmp.write_bytes(cv2.imencode('.png', cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))[1].tobytes())
    return dict(name=job.name, partition=job.partition, source=str(job.source), source_width=info.width,
                source_height=info.height, source_fps=str(info.fps), frame_start=used[0], frame_end=used[-1] + 1,
                num_frames=count, fps=str(out_fps), crop_x0=box.x0, crop_y0=box.y0, crop_side=box.side, size=size,
                format=fmt, crf=crf if fmt == 'mp4' else '', box_from=box_from, person_fraction=fraction, settings='')


def _settings(args):
    return f'size={args.size};fps={args.fps};max_frames={args.max_frames};format={args.format};crf={args.crf};' \
           f'margin={args.margin}'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--input', type=Path, help='folder of raw videos')
    source.add_argument('--ted-csv', type=Path, help='MRAA TED-style metadata CSV (video_id,start,end,bbox,partition)')
    source.add_argument('--from-metadata', type=Path, help='metadata.csv of an earlier run: rebuild exactly')
    parser.add_argument('--videos', type=Path, help='with --ted-csv: folder holding <youtube id>.<ext>')
    parser.add_argument('--out', type=Path, required=True, help='output root (gets train/, test/, metadata.csv)')
    parser.add_argument('--size', type=int, default=256, help='output side in pixels (256 or 384)')
    parser.add_argument('--fps', type=float, default=None,
                        help='resample clips faster than this (nearest frame in time); slower clips keep their rate')
    parser.add_argument('--max-frames', type=int, default=None, help='keep at most this many frames per clip')
    parser.add_argument('--format', choices=('mp4', 'png'), default='mp4')
    parser.add_argument('--crf', type=int, default=0, help='0 = lossless (default); <= 12 visually lossless')
    parser.add_argument('--margin', type=float, default=0.1, help='crop margin per side, fraction of person size')
    parser.add_argument('--min-person-fraction', type=float, default=0.2,
                        help='a clip needs a detected person in at least this fraction of frames')
    parser.add_argument('--split', type=Path, help='CSV name,partition (train/test/exclude)')
    parser.add_argument('--test-names', default='', help='comma-separated clip names of the test split')
    parser.add_argument('--exclude', default='', help='comma-separated clip names to leave out')
    parser.add_argument('--short-names', action='store_true', help="clip name = file stem up to the first '_'")
    parser.add_argument('--preview', action='store_true', help='write OUT/preview/<name>.png contact sheets')
    parser.add_argument('--vertices', action='store_true',
                        help='then label every clip with the holistic vertex teacher (tools/extract_vertices.py '
                             '--root OUT): the training set with vertex labels in one command')
    args = parser.parse_args(argv)
    if args.ted_csv and not args.videos:
        parser.error('--ted-csv needs --videos DIR (the local source videos)')
    if not 0 <= args.crf <= 12:
        parser.error('--crf must be in 0..12 (0 lossless, <= 12 visually lossless)')
    if args.size < 16:
        parser.error('--size must be at least 16 pixels')
    if args.vertices and args.format != 'mp4':
        parser.error('--vertices labels mp4 clips: use --format mp4, or run tools/extract_vertices.py --videos')
    return args


def build_jobs(args):
    """Clip jobs and report rows of left-out inputs for the chosen input mode."""
    if args.ted_csv:
        jobs, left_out = jobs_from_ted_csv(args.ted_csv, args.videos)
    elif args.from_metadata:
        jobs, left_out = jobs_from_metadata(args.from_metadata), []
        if not jobs:
            raise SystemExit(f"error: '{args.from_metadata}' holds no clip rows")
        sizes = {int(row['size']) for row in _read_rows(args.from_metadata).values()}
        if sizes != {args.size}:
            raise SystemExit(f"error: '{args.from_metadata}' records --size {sorted(sizes)}; pass the same --size")
    else:
        test_names = {n for n in args.test_names.split(',') if n}
        excluded = {n for n in args.exclude.split(',') if n}
        split = read_split_csv(args.split) if args.split else None
        if split is None and not test_names:
            readme = next((p for p in (args.input / 'README.md', args.input.parent / 'README.md') if p.exists()),
                          None)
            if readme is None:
                raise SystemExit('error: no split given: pass --split CSV or --test-names a,b (or put a README.md '
                                 'with a "- **test**" bullet next to the videos)')
            test_names, readme_excluded = split_from_readme(readme)
            excluded |= readme_excluded
            print(f'split from {readme}: test = {sorted(test_names)}, excluded = {sorted(excluded)}')
        jobs, left_out = jobs_from_folder(args.input, split, test_names, excluded, args.short_names)
    for job in jobs:
        if job.partition not in ('train', 'test'):
            raise SystemExit(f"error: clip '{job.name}' has partition '{job.partition}'; use train or test")
    return jobs, left_out


def main(argv=None):
    """Command line entry point (see the module docstring). Returns the process exit code: 0 when every selected
    clip was written (or was already done), 1 when some clips failed (listed in OUT/report.csv)."""
    args = parse_args(argv)
    jobs, report = build_jobs(args)
    out = args.out
    metadata_path = out / 'metadata.csv'
    metadata = _read_rows(metadata_path)
    settings = _settings(args)
    started, frames_written = time.time(), 0
    for partition in ('train', 'test'):
        (out / partition).mkdir(parents=True, exist_ok=True)
    for job in tqdm(jobs, desc='clips', unit='clip'):
        entry = dict(name=job.name, source=str(job.source), partition=job.partition)
        output = out / job.partition / (job.name if args.format == 'png' else f'{job.name}.mp4')
        row = metadata.get(job.name)
        if row is not None and row.get('settings') == settings and output.exists():
            report.append(dict(entry, status='done', message='already written by an earlier run'))
            continue
        try:
            row = prepare_clip(job, out, args.size, args.fps, args.max_frames, args.format, args.crf, args.margin,
                               args.preview, args.min_person_fraction)
        except NoPersonError as error:
            message = f'{error}; left out of the data set'
            tqdm.write(f"warning: {job.name} ({job.source}): {message}")
            report.append(dict(entry, status='no-person', message=message))
            continue
        except VideoReadError as error:
            tqdm.write(f'warning: {job.name}: {error}')
            report.append(dict(entry, status='unreadable', message=str(error)))
            continue
        row['settings'] = settings
        stale = out / ('test' if job.partition == 'train' else 'train') / output.name
        if stale.is_file():
            stale.unlink()  # the clip moved to the other partition
        metadata[job.name] = row
        _write_rows(metadata_path, list(metadata.values()), METADATA_FIELDS)
        frames_written += row['num_frames']
        report.append(dict(entry, status='written', message=f"{row['num_frames']} frames at {row['fps']} fps, "
                                                             f"crop {row['crop_x0']},{row['crop_y0']} side "
                                                             f"{row['crop_side']}"))
    _write_rows(out / 'report.csv', report, REPORT_FIELDS)
    counts = {}
    for entry in report:
        counts[entry['status']] = counts.get(entry['status'], 0) + 1
    print(f"{frames_written} frames written in {time.time() - started:.1f} s; clips: "
          + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())) + f"; report: {out / 'report.csv'}")
    failed = [entry for entry in report if entry['status'] in ('no-person', 'unreadable')]
    for entry in report:
        if entry['status'] in ('no-person', 'unreadable', 'not-in-split'):
            print(f"  {entry['status']}: {entry['name']}: {entry['message']}")
    labels_failed = 0
    if args.vertices:
        from tools.extract_vertices import main as extract_vertices
        labels_failed = extract_vertices(['--root', str(out)])
    return 1 if failed or labels_failed else 0


if __name__ == '__main__':
    sys.exit(main())
