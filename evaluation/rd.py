"""Rate-distortion evaluation (``run.py --mode rd``): the paper's Figure 4 and Table 1.

For every test sequence (first ``rd_params.num_frames`` frames at the model resolution) and every point:
    s2d            the generative codec: coding.codec.Encoder -> ``.s2d`` file -> coding.codec.Decoder,
                   at each key-frame QP (rd_params.key_qps) and each kp_step (rd_params.kp_steps);
    anchor         VVC, the whole sequence in low-delay mode (coding.vvc.encode_sequence) at rd_params.anchor_qps;
    frozen         the VVC-coded key frame (coding.vvc.encode_intra) repeated for every frame, at its bits;
    reconstruction the uncompressed reconstruction (modules.render.reconstruct): quality ceiling, no rate.
Bits are the sizes of the real ``.s2d`` / ``.266`` files (kept under ``<out>/bitstreams``). Each (codec, QP,
sequence) result is cached as JSON under ``<out>/cache`` (atomic writes), keyed by the frames' hash, backend and
weights, so an interrupted run resumes and a finished one is served from the cache.

Motion fidelity (metric ``motion``, evaluation/motion.py) is computed for every point, the frozen key frame
included (the no-motion baseline): the teacher's landmarks of each original sequence are cached once under
``<out>/cache/reference/<sequence>_<hash>.holistic.npz`` and reused by its points; each point's result is stored in
its cache record (``motion``), its fields go to results.csv (MOTION_ROW_FIELDS) and summary.md has a motion table
(means over the sequences where a value is defined, frame counts summed).

Outputs in ``<out>``: results.csv (one row per sequence and point), summary.md (BD-rate table in the paper's
Table 1 layout and mean rate / quality per QP), summary.json, plots/rd_<metric>.png, tensorboard/.
``run.py --mode vertices`` (:func:`run_vertices`) reuses the same points and cache for the vertex accuracy.
"""
import datetime
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from coding import vvc
from coding.bitstream import VERSION as BITSTREAM_VERSION
from coding.codec import MAX_CHAIN, REFINE_VERSION, Decoder, Encoder, default_inter_key_frames, refine_steps_of
from evaluation.bdrate import bd_rate, pareto_front, quality_label, to_quality
from evaluation.fvd import CLIP_LENGTH, frechet_distance
from evaluation.metrics import NON_SCALAR, MetricSuite
from evaluation.motion import FIELDS as MOTION_FIELDS
from evaluation.motion import Landmarks
from evaluation.params import rd_params
from evaluation.plots import PLOT_METRICS, plot_rd
from evaluation.report import write_csv, write_json
from evaluation.sequences import evaluation_dataset, load_sequences
from evaluation.vertices import vertex_accuracy, write_overlay
from modules.build import load_inference_models
from modules.render import reconstruct
from video_io import atomic_path

ANCHOR = 'anchor'
VERTEX_FIELDS = ('vertex_error_px', 'pck5', 'pck10')
#: motion-fidelity fields in results.csv (all of evaluation.motion.FIELDS but 'frames', which the row has already)
MOTION_ROW_FIELDS = tuple(f for f in MOTION_FIELDS if f != 'frames')
#: motion fields averaged over the sequences in summary.md / summary.json, and the counts summed there
MOTION_MEAN_FIELDS = ('face_error_px', 'face_error_norm', 'face_pck', 'pose_error_px', 'pose_error_norm', 'pose_pck',
                      'hands_error_px', 'hands_error_norm', 'hands_pck', 'mouth_corr', 'yaw_corr', 'pitch_corr')
MOTION_SUM_FIELDS = ('frames_no_face_original', 'frames_no_face_decoded', 'frames_no_pose_original',
                     'frames_no_pose_decoded')


@dataclass(frozen=True)
class Point:
    """One codec operating point.

    Attributes:
        codec: 's2d' | 'anchor' | 'frozen' | 'reconstruction'.
        qp: key-frame QP (s2d, frozen), sequence QP (anchor), None (reconstruction).
        kp_step: keypoint quantisation step of s2d (None: the codec's default), else None.
        curve: name of the RD curve the point belongs to ('s2d', 's2d_kp0.05', 'anchor', ...).
        label: plot / table label.
        threshold: key-frame refresh threshold of s2d in dB (None: key frames only at scene cuts), else None.
    """
    codec: str
    qp: object
    kp_step: object
    curve: str
    label: str
    threshold: object = None


def machine_description():
    """One line: CPU model, core count, OS, Python / torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as handle:
            cpu = next(line.split(':', 1)[1].strip() for line in handle if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


class RDEvaluation:
    """The RD pipeline of one config + checkpoint into one output folder.

    Args:
        config: full config dict (rd_params optional, see evaluation/params.py).
        checkpoint_path: trained checkpoint (*.pth).
        out_dir: output folder (results, cache, bitstreams, plots).
        device: torch device string for the networks and metrics.
        weights_dir: folder of learned-metric weights (evaluation/weights.py).
        metrics: metric names overriding rd_params.metrics.
        codecs: subset of ('reconstruction', 's2d', 'frozen', 'anchor') to run (default all).
    Attributes:
        computed, cached: numbers of points computed / served from the cache by the last run().
    Raises:
        FileNotFoundError: checkpoint or test data missing; ValueError: bad rd_params.
    """

    CODECS = ('reconstruction', 's2d', 'frozen', 'anchor')

    def __init__(self, config, checkpoint_path, out_dir, device='cpu', weights_dir=None, metrics=None,
                 codecs=CODECS):
        self.config = config
        self.params = rd_params(config)
        self.checkpoint_path = str(checkpoint_path)
        self.out = Path(out_dir)
        self.device = str(device)
        self.models = load_inference_models(self.checkpoint_path, device)
        self.weights_id = self.models.weights_id.hex()
        backend = self.params['vvc_backend']
        self.backend = vvc.auto_backend() if backend == 'auto' else backend
        inter = self.params['inter_key_frames']
        self.inter_key_frames = default_inter_key_frames(self.backend) if inter is None else inter
        self.refine_steps = refine_steps_of(self.models.config, self.params['refine_steps'])
        self.suite = MetricSuite(metrics or self.params['metrics'], device, weights_dir,
                                 batch_size=self.params['batch_size'], fvd_stride=self.params['fvd_stride'])
        self.dataset = evaluation_dataset(config, self.params['root_dir'])
        self.codecs = tuple(codecs)
        self.computed = self.cached = 0

    # ---- points -----------------------------------------------------------------------------------------------
    def points(self):
        """Every operating point of the run, in evaluation order (list of Point)."""
        steps = self.params['kp_steps']
        points = []
        if 'reconstruction' in self.codecs:
            points.append(Point('reconstruction', None, None, 'reconstruction', 'Reconstruction (uncompressed)'))
        if 's2d' in self.codecs:
            thresholds = self.params['refresh_thresholds']
            sweep = ' (Pareto front over key QP x refresh threshold)' if len(thresholds) > 1 else ''
            for step in steps:
                curve, label = ('s2d', 'Sparse2Dense') if len(steps) == 1 else \
                    (f's2d_kp{step}', f'Sparse2Dense (kp_step {step})')
                points += [Point('s2d', qp, step, curve, label + sweep, threshold)
                           for threshold in thresholds for qp in self.params['key_qps']]
        if 'frozen' in self.codecs:
            points += [Point('frozen', qp, None, 'frozen', 'Frozen key frame') for qp in self.params['key_qps']]
        if ANCHOR in self.codecs:
            points += [Point(ANCHOR, qp, None, ANCHOR, f'VVC anchor ({self.backend}, low delay)')
                       for qp in self.params['anchor_qps']]
        return points

    # ---- cache ------------------------------------------------------------------------------------------------
    def _cache_file(self, point, sequence):
        qp = 'none' if point.qp is None else point.qp
        return self.out / 'cache' / point.curve / f'{sequence}_qp{qp}{_threshold_suffix(point)}.json'

    def _key(self, point, seq, frames_hash):
        # what only the Sparse2Dense encoder depends on (None for the other codecs)
        s2d = dict(bitstream_version=BITSTREAM_VERSION, inter_key_frames=self.inter_key_frames,
                   refine_steps=self.refine_steps, refine_version=REFINE_VERSION)
        return dict(codec=point.codec, qp=point.qp, kp_step=point.kp_step, threshold=point.threshold,
                    **{name: value if point.codec == 's2d' else None for name, value in s2d.items()},
                    sequence=seq.name, frames=len(seq.frames), frames_sha256=frames_hash,
                    backend=None if point.codec == 'reconstruction' else self.backend,
                    weights_id=self.weights_id if point.codec in ('s2d', 'reconstruction') else None)

    def _cached(self, path, key, wants_vertices):
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get('key') != key:
            return None
        wanted = set(self.suite.available) - NON_SCALAR
        if not wanted <= set(record['metrics']):
            return None
        if 'motion' in self.suite.available and record.get('motion') is None:
            return None
        if 'fvd' in self.suite.available and record.get('fvd_features') is None and record['frames'] >= CLIP_LENGTH:
            return None
        if wants_vertices and record.get('vertices') is None:
            return None
        return record

    def _reference_features(self, seq, frames_hash):
        """I3D features of the original frames (cached per frames hash); None without FVD or for short clips."""
        if 'fvd' not in self.suite.available or len(seq.frames) < CLIP_LENGTH:
            return None
        path = self.out / 'cache' / 'reference' / f'{seq.name}_{frames_hash[:16]}.fvd.npy'
        if not path.is_file():
            _save_npy(path, self.suite.fvd_features(seq.frames))
        return path

    def _reference_landmarks(self, seq, frames_hash):
        """Teacher landmarks of the original frames (cached per frames hash); None without the motion metric."""
        if 'motion' not in self.suite.available:
            return None
        path = self.out / 'cache' / 'reference' / f'{seq.name}_{frames_hash[:16]}.holistic.npz'
        if path.is_file():
            return Landmarks.load(path)
        landmarks = self.suite.motion_landmarks(seq.frames)
        with atomic_path(path) as tmp:
            with open(tmp, 'wb') as handle:
                landmarks.save(handle)
        return landmarks

    # ---- coding -----------------------------------------------------------------------------------------------
    def _bitstream_path(self, point, seq, suffix):
        return self.out / 'bitstreams' / point.curve / f'{seq.name}_qp{point.qp}{_threshold_suffix(point)}{suffix}'

    def _code(self, point, seq, fps):
        """Run one point -> (decoded frames (T, H, W, 3) uint8, vertices (T, N, 2) | None, bits | None,
        bitstream path | None, seconds dict)."""
        if point.codec == 'reconstruction':
            result = reconstruct(self.models, seq.frames)
            return result['frames'], result['vertices'], None, None, dict(
                render_s=result['seconds'], vertex_head_s=result['vertex_head_seconds'])
        if point.codec == 's2d':
            encoder = Encoder(self.checkpoint_path, self.device, point.kp_step, point.qp, self.backend,
                              refresh_threshold=point.threshold, inter_key_frames=self.inter_key_frames,
                              refine_steps=self.refine_steps)
            start = time.perf_counter()
            bitstream = encoder.encode(seq.frames, fps=seq.fps or fps)
            encode_s = time.perf_counter() - start
            path = self._bitstream_path(point, seq, '.s2d')
            _save_bytes(path, bitstream)
            decoder = Decoder(self.checkpoint_path, self.device)
            start = time.perf_counter()
            decoded = list(decoder.decode(path.read_bytes()))
            decode_s = time.perf_counter() - start
            frames = np.stack([np.asarray(frame) for frame, _ in decoded])
            vertices = np.stack([np.asarray(v) for _, v in decoded])
            return frames, vertices, 8 * path.stat().st_size, path, dict(encode_s=encode_s, decode_s=decode_s)
        start = time.perf_counter()
        if point.codec == 'frozen':
            coded = vvc.encode_intra(seq.frames[0], point.qp, self.backend, fps)
            frames = np.repeat(coded.frames, len(seq.frames), axis=0)
        else:
            coded = vvc.encode_sequence(seq.frames, point.qp, fps, self.backend)
            frames = coded.frames
        seconds = time.perf_counter() - start
        path = self._bitstream_path(point, seq, '.266')
        _save_bytes(path, coded.bitstream)
        return frames, None, coded.bits, path, dict(encode_decode_s=seconds)

    def _evaluate(self, point, seq, frames_hash, reference_features):
        fps_native = float(seq.fps) if seq.fps else None
        fps = self.params['fps'] or fps_native
        key = self._key(point, seq, frames_hash)
        path = self._cache_file(point, seq.name)
        wants_vertices = seq.vertices is not None and point.codec in ('s2d', 'reconstruction')
        record = self._cached(path, key, wants_vertices)
        if record is not None:
            self.cached += 1
            return record
        frames, vertices, bits, bitstream, seconds = self._code(point, seq, fps)
        record = dict(key=key, codec=point.codec, curve=point.curve, label=point.label, qp=point.qp,
                      kp_step=point.kp_step, threshold=point.threshold, sequence=seq.name, frames=len(seq.frames), bits=bits,
                      fps_native=fps_native, backend=key['backend'],
                      bitstream=str(bitstream.relative_to(self.out)) if bitstream else None,
                      metrics=self.suite.sequence(seq.frames, frames, fps), seconds=seconds,
                      vertices=None, fvd_features=None,
                      motion=self.suite.motion(seq.frames, frames, fps_native or fps,
                                               self._reference_landmarks(seq, frames_hash)))
        if wants_vertices:
            record['vertices'] = vertex_accuracy(vertices, seq.vertices, seq.confidence, *seq.frames.shape[1:3],
                                                 self.params['vertex_min_confidence'])
        if reference_features is not None:
            features = path.with_suffix('.fvd.npy')
            _save_npy(features, self.suite.fvd_features(frames))
            record['fvd_features'] = features.name
            record['reference_features'] = str(reference_features.relative_to(self.out))
        write_json(path, record)
        self.computed += 1
        return record

    # ---- run --------------------------------------------------------------------------------------------------
    def evaluate(self):
        """Evaluate every sequence at every point (computed or served from the cache); writes no report.

        Returns:
            list of per-(point, sequence) records (dicts, as cached).
        Raises:
            ValueError: a clip without its own frame rate (frame folder / strip) and no rd_params.fps.
        """
        self.computed = self.cached = 0
        points = self.points()
        videos = len(self.params['videos'] or self.dataset.groups)
        records = []
        progress = tqdm(total=len(points) * videos, desc='rd', unit='point')
        for seq in load_sequences(self.dataset, self.params['num_frames'], self.params['videos']):
            if not seq.fps and not self.params['fps']:
                raise ValueError(f"'{seq.path}' has no frame rate of its own (frame folder / strip): set "
                                 "rd_params.fps to the rate that kbps should use")
            frames_hash = hashlib.sha256(seq.frames.tobytes()).hexdigest()
            reference = self._reference_features(seq, frames_hash)
            for point in points:
                progress.set_postfix_str(f'{seq.name} {point.curve} qp={point.qp}')
                records.append(self._evaluate(point, seq, frames_hash, reference))
                progress.update()
        progress.close()
        return records

    def run(self):
        """evaluate(), then write results.csv, summary.md / summary.json, plots and tensorboard logs.

        Returns:
            dict: 'records', 'summary' (see summarize), 'computed', 'cached' (point counts of this run).
        """
        records = self.evaluate()
        summary = summarize(records, self.out, self.params, self.suite)
        self._write(records, summary)
        return dict(records=records, summary=summary, computed=self.computed, cached=self.cached)

    def _write(self, records, summary):
        write_csv(self.out / 'results.csv', [result_row(r, self.params['fps']) for r in records])
        context = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                       machine=machine_description(), device=self.device, checkpoint=self.checkpoint_path,
                       epoch=self.models.epoch, weights_id=self.weights_id, vvc=vvc.get_backend(self.backend).description(),
                       inter_key_frames=self.inter_key_frames, refine_steps=self.refine_steps,
                       frame_shape=list(self.dataset.frame_shape), num_frames=self.params['num_frames'],
                       fps=self.params['fps'], sequences=sorted({r['sequence'] for r in records}),
                       bd_min_overlap=self.params['bd_min_overlap'],
                       protocol=self.suite.protocol(self.dataset.frame_shape[:2]))
        figures = {}
        for metric in PLOT_METRICS:
            if metric in summary['metrics']:
                figures[metric] = plot_rd(summary, metric, self.out / 'plots' / f'rd_{metric}.png')
        summary_md = render_summary(summary, context, sorted(figures))
        with atomic_path(self.out / 'summary.md') as tmp:
            tmp.write_text(summary_md)
        write_json(self.out / 'summary.json', dict(context=context, **summary))
        _log_tensorboard(self.out / 'tensorboard', summary, summary_md, figures)


def _threshold_suffix(point):
    return '' if point.threshold is None else f'_r{point.threshold:g}'


def _save_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as handle:
            np.save(handle, array)


def result_row(record, forced_fps):
    """One results.csv row: bits, bits/frame, kbps at the clip's own fps and at the reported fps, every metric,
    vertex accuracy and timings of one (point, sequence)."""
    fps = forced_fps or record['fps_native']
    bits = record['bits']
    row = dict(codec=record['curve'], label=record['label'], qp=record['qp'], kp_step=record['kp_step'],
               refresh_threshold=record.get('threshold'), sequence=record['sequence'], frames=record['frames'], bits=bits,
               bits_per_frame=None if bits is None else bits / record['frames'],
               fps_native=record['fps_native'],
               kbps_native=None if bits is None or not record['fps_native'] else
               bits * record['fps_native'] / record['frames'] / 1000,
               fps=fps, kbps=None if bits is None else bits * fps / record['frames'] / 1000)
    row.update(record['metrics'])
    row.update(record['vertices'] or {})
    row.update({k: v for k, v in (record.get('motion') or {}).items() if k in MOTION_ROW_FIELDS})
    row.update({f'{k[:-2]}_ms_per_frame': 1000 * v / record['frames'] for k, v in record['seconds'].items()})
    row.update(backend=record['backend'], bitstream=record['bitstream'])
    return row


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _set_fvd(records, out):
    """FVD of one point over all its sequences (None + reason when features are missing)."""
    if any(r.get('fvd_features') is None for r in records):
        return None, 'FVD needs I3D features of every sequence (weights missing or sequences < 16 frames)'
    cache = {}
    def load(path):
        if path not in cache:
            cache[path] = np.load(path)
        return cache[path]
    reference = np.concatenate([load(out / r['reference_features']) for r in records])
    decoded = np.concatenate([load(out / 'cache' / r['curve'] / r['fvd_features']) for r in records])
    return frechet_distance(reference, decoded), ''


def summarize(records, out, params, suite):
    """Mean rate / quality per curve and QP, set-level FVD, and BD-rates against the VVC anchor.

    Aggregation: per-sequence values (frame means) averaged over sequences; kbps at rd_params.fps (or each clip's
    own); FVD over all clips of all sequences. BD-rate (evaluation/bdrate.py) on (a) the test-set average curve
    (every metric, incl. FVD) and (b) per sequence, then averaged (JVET style; not for FVD).

    Returns:
        dict: 'metrics' (names with values), 'curves' {curve: {'label', 'points': [{qp, kbps, kbps_native,
        bits_per_frame, <metric>..., vertex...}]}}, 'bd_rate' {curve: {metric: {'value', 'reason', 'overlap'}}},
        'bd_rate_per_sequence' {curve: {metric: {'value', 'reason'}}}, 'unavailable' {metric: reason}.
    """
    rows = [result_row(r, params['fps']) for r in records]
    metrics = [m for m in suite.available if m not in NON_SCALAR]
    curves = {}
    for record, row in zip(records, rows):
        curve = curves.setdefault(record['curve'], dict(label=record['label'], codec=record['codec'], points={}))
        curve['points'].setdefault((record['qp'], record.get('threshold')), []).append((record, row))
    has_fvd = 'fvd' in suite.available
    unavailable = {name: str(why) for name, why in suite.unavailable.items()}
    for curve in curves.values():
        points = []
        curve['pareto'] = len({threshold for _, threshold in curve['points']}) > 1
        for (qp, threshold), members in curve['points'].items():
            point = dict(qp=qp, threshold=threshold, sequences=len(members))
            for field in ('kbps', 'kbps_native', 'bits_per_frame') + tuple(metrics) + VERTEX_FIELDS:
                point[field] = _mean(row.get(field) for _, row in members)
            if 'motion' in suite.available:
                for field in MOTION_MEAN_FIELDS:
                    point[field] = _mean(row.get(field) for _, row in members)
                for field in MOTION_SUM_FIELDS:
                    point[field] = sum(int(row[field]) for _, row in members if row.get(field) is not None)
            if has_fvd:
                point['fvd'], why = _set_fvd([r for r, _ in members], out)
                if why:
                    unavailable['fvd'] = why
            points.append(point)
        curve['points'] = sorted(points, key=lambda p: (p['kbps'] is None, p['kbps'] or 0, p['qp'] or 0))
    quality_metrics = metrics + (['fvd'] if has_fvd and 'fvd' not in unavailable else [])
    result = dict(metrics=quality_metrics, curves=curves, bd_rate={}, bd_rate_per_sequence={},
                  unavailable=unavailable)
    if ANCHOR not in curves:
        return result
    anchor = curves[ANCHOR]['points']
    for name, curve in curves.items():
        if name == ANCHOR or curve['codec'] == 'reconstruction':
            continue
        result['bd_rate'][name] = {}
        for metric in quality_metrics:
            tested = _operating_points(curve['points'], metric, curve['pareto'])
            bd = bd_rate([p['kbps'] for p in anchor], to_quality(metric, [p[metric] for p in anchor]),
                         [p['kbps'] for p in tested], to_quality(metric, [p[metric] for p in tested]),
                         params['bd_min_overlap'])
            result['bd_rate'][name][metric] = dict(value=bd.bd_rate, reason=bd.reason, overlap=bd.overlap)
        result['bd_rate_per_sequence'][name] = _per_sequence_bd(rows, name, metrics, params['bd_min_overlap'],
                                                                curve['pareto'])
    return result


def _operating_points(points, metric, pareto):
    """The points a BD-rate uses: all (sorted by QP as before) or, for a sweep, the Pareto front in rate and the
    metric's quality (points of one sequence, or means over sequences; dicts with 'kbps' and the metric)."""
    if not pareto:
        return sorted(points, key=lambda p: (p['qp'] is None, p['qp'] or 0))
    quality = [None if p.get(metric) is None else float(to_quality(metric, [p[metric]])[0]) for p in points]
    return [points[i] for i in pareto_front([p['kbps'] for p in points], quality)]


def _per_sequence_bd(rows, curve, metrics, min_overlap, pareto=False):
    out = {}
    sequences = sorted({r['sequence'] for r in rows})
    for metric in metrics:
        values, reasons = [], []
        for seq in sequences:
            a = _operating_points([r for r in rows if r['codec'] == ANCHOR and r['sequence'] == seq], metric, False)
            t = _operating_points([r for r in rows if r['codec'] == curve and r['sequence'] == seq], metric, pareto)
            bd = bd_rate([r['kbps'] for r in a], to_quality(metric, [r[metric] for r in a]),
                         [r['kbps'] for r in t], to_quality(metric, [r[metric] for r in t]), min_overlap)
            if bd.bd_rate is None:
                reasons.append(f'{seq}: {bd.reason}')
            else:
                values.append(bd.bd_rate)
        out[metric] = dict(value=float(np.mean(values)) if values and not reasons else None,
                           reason='; '.join(reasons), sequences=len(values))
    return out


def _fmt(value, digits=3):
    if value is None:
        return 'n/a'
    return f'{value:.{digits}f}' if abs(value) < 1000 else f'{value:.0f}'


def _bd_table(bd_rates, curves, metrics, note_prefix):
    """Markdown lines of one BD-rate table (one row per codec, one column per metric) and its n/a notes."""
    lines = ['| codec | ' + ' | '.join(quality_label(m) for m in metrics) + ' |', '|---' * (len(metrics) + 1) + '|']
    notes = []
    for curve, table in bd_rates.items():
        cells = []
        for metric in metrics:
            entry = table[metric]
            if entry['value'] is None:
                notes.append(f"{curves[curve]['label']}, {quality_label(metric)}: {entry['reason']}")
                cells.append(f'n/a [{note_prefix}{len(notes)}]')
            else:
                cells.append(f"{entry['value']:+.1f} %")
        lines.append(f"| {curves[curve]['label']} | " + ' | '.join(cells) + ' |')
    return lines + [''] + [f'[{note_prefix}{i}] {note}' for i, note in enumerate(notes, 1)]


def _point_name(point):
    """'42', '42, refresh 5 dB' or '-' (no QP)."""
    if point['qp'] is None:
        return '-'
    return str(point['qp']) + ('' if point.get('threshold') is None else f", refresh {point['threshold']:g} dB")


def render_summary(summary, context, plotted):
    """summary.md text: context, Table 1 (BD-rate vs the anchor), mean rate / quality per QP, notes."""
    metrics = summary['metrics']
    lines = ['# Rate-distortion results', '',
             f"- date: {context['date']}; machine: {context['machine']}; device: {context['device']}",
             f"- checkpoint: `{context['checkpoint']}` (epoch {context['epoch']}, weights id {context['weights_id']})",
             f"- VVC: {context['vvc']}",
             "- Sparse2Dense key frames: " + ("refreshed key frames are P pictures predicted from the earlier key "
                                             f"frames (VVenC low delay without MCTF, chains of at most {MAX_CHAIN})"
                                             if context.get('inter_key_frames') else "every key frame intra"),
             "- Sparse2Dense keypoints: " + (f"refined at the encoder, {context['refine_steps']} descent steps per "
                                            "frame, each batch warm-started from the previous frame's correction "
                                            "(coding/refine.py, Encoder._refine)" if context.get('refine_steps')
                                            else "the keypoint detector's"),
             f"- sequences ({len(context['sequences'])}): {', '.join(context['sequences'])}; first "
             f"{context['num_frames']} frames at {context['frame_shape'][1]}x{context['frame_shape'][0]}",
             '- kbps: ' + (f"at a forced {context['fps']} fps (results.csv also has kbps_native at each clip's own "
                           "rate)" if context['fps'] else "at each clip's own frame rate"),
             '- BD-rate: bjontegaard package, piecewise cubic (pchip) interpolation of log-rate over quality, '
             'overlap interval only (no extrapolation); lower-is-better metrics as 1-DISTS, 1-LPIPS, 5000-FVD; '
             'negative = bits saved against the VVC anchor.',
             f"- overlap rule: a BD-rate is computed only where the two curves' quality ranges overlap on at least "
             f"{context['bd_min_overlap']:.0%} of their union (else n/a with the overlap); a curve swept over key "
             "QP x refresh threshold enters as its Pareto front (rate vs that metric's quality), per sequence for the "
             "per-sequence table and over the sequence means for the average-curve table.",
             '', '## Metric protocol', '']
    lines += [f'- {line}' for line in context['protocol']]
    lines += ['', '## BD-rate against the VVC anchor (test-set average curves)', '']
    if summary['bd_rate']:
        lines += _bd_table(summary['bd_rate'], summary['curves'], metrics, '')
        lines += ['', '### Per sequence, then averaged (JVET style)', '']
        lines += _bd_table(summary['bd_rate_per_sequence'], summary['curves'], [m for m in metrics if m != 'fvd'], 's')
    else:
        lines.append('No VVC anchor in this run: no BD-rate.')
    lines += ['', '## Mean rate and quality per QP (mean over sequences)', '']
    columns = ['kbps', 'kbps_native', 'bits_per_frame'] + metrics + list(VERTEX_FIELDS)
    lines.append('| codec | QP | ' + ' | '.join(columns) + ' |')
    lines.append('|---' * (len(columns) + 2) + '|')
    for curve in summary['curves'].values():
        for point in curve['points']:
            lines.append(f"| {curve['label']} | {_point_name(point)} | "
                         + ' | '.join(_fmt(point.get(c)) for c in columns) + ' |')
    motion_points = [(curve, p) for curve in summary['curves'].values() for p in curve['points']
                     if 'mouth_corr' in p]
    if motion_points:
        lines += ['', '## Motion fidelity (MediaPipe Holistic teacher, original vs decoded; evaluation/motion.py)', '',
                  'Landmark error in px at the evaluated size, normalised error (face: by the inter-ocular distance; '
                  'pose, hands: by the torso) and PCK at 0.1 of it; Pearson correlation over time of the mouth '
                  'opening, head yaw and pitch (0 when the decoded series is constant). Means over the sequences '
                  'where defined; frames where the teacher found no face, summed over the sequences '
                  '(original / decoded).', '']
        columns = MOTION_MEAN_FIELDS
        lines.append('| codec | QP | ' + ' | '.join(columns) + ' | no face orig / dec | no person orig / dec |')
        lines.append('|---' * (len(columns) + 4) + '|')
        for curve, point in motion_points:
            lines.append(f"| {curve['label']} | {_point_name(point)} | "
                         + ' | '.join(_fmt(point.get(c)) for c in columns)
                         + f" | {point['frames_no_face_original']} / {point['frames_no_face_decoded']}"
                         + f" | {point['frames_no_pose_original']} / {point['frames_no_pose_decoded']} |")
    if summary['unavailable']:
        lines += ['', '## Unavailable metrics', ''] + [f'- {why}' for why in summary['unavailable'].values()]
    if plotted:
        lines += ['', '## Plots', ''] + [f'![{m}](plots/rd_{m}.png)' for m in plotted]
    return '\n'.join(lines) + '\n'


def _log_tensorboard(directory, summary, summary_md, figures):
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(directory)) as writer:
        writer.add_text('rd/summary', summary_md)
        for metric, figure in figures.items():
            writer.add_figure(f'rd/{metric}', figure)
        for name, curve in summary['curves'].items():
            for point in curve['points']:
                if point['qp'] is None:
                    continue
                for field in ['kbps'] + summary['metrics']:
                    if point.get(field) is not None:
                        writer.add_scalar(f'rd_{field}/{name}', point[field], point['qp'])


def run_rd(config, checkpoint_path, out_dir, device='cpu', weights_dir=None):
    """``run.py --mode rd``: the whole RD evaluation; returns RDEvaluation.run()'s dict."""
    return RDEvaluation(config, checkpoint_path, out_dir, device, weights_dir).run()


def _vertex_mean_rows(rows):
    groups = {}
    for row in rows:
        if row['labelled_vertices']:
            groups.setdefault((row['codec'], row['qp']), []).append(row)
    means = []
    for (codec, qp), members in groups.items():
        mean = dict(codec=codec, qp=qp, sequence=f'mean over {len(members)} labelled sequences')
        for field in ('vertex_error_px', 'pck5', 'pck10', 'labelled_vertices', 'vertex_head_ms_per_frame'):
            values = [m[field] for m in members if m.get(field) is not None]
            mean[field] = float(np.mean(values)) if values else None
        means.append(mean)
    return means


def run_vertices(config, checkpoint_path, out_dir, device='cpu', weights_dir=None):
    """``run.py --mode vertices``: vertex accuracy of the uncompressed reconstruction and of the decoded streams at
    every key-frame QP, the vertex head's time per frame, and an overlay MP4 for one clip.

    Shares the RD pipeline's points and cache (``<out_dir>/cache``): after ``--mode rd`` this is instant.
    Writes ``<out_dir>/vertices/vertices.csv`` (per sequence and point, then means over labelled sequences),
    ``vertices.json`` and ``overlay_<video>_qp<QP>.mp4`` (decoded frames, predicted red, confident teacher green).

    Args:
        config, checkpoint_path, out_dir, device, weights_dir: as evaluation.rd.RDEvaluation.
    Returns:
        list of row dicts (per sequence and point, then the means).
    """
    evaluation = RDEvaluation(config, checkpoint_path, out_dir, device, weights_dir, codecs=('reconstruction', 's2d'))
    records = evaluation.evaluate()
    rows = []
    for record in records:
        row = dict(codec=record['curve'], qp=record['qp'], sequence=record['sequence'],
                   **(record['vertices'] or dict(vertex_error_px=None, pck5=None, pck10=None, labelled_vertices=0)))
        if 'vertex_head_s' in record['seconds']:
            row['vertex_head_ms_per_frame'] = 1000 * record['seconds']['vertex_head_s'] / record['frames']
        rows.append(row)
    rows += _vertex_mean_rows(rows)
    out = Path(out_dir) / 'vertices'
    write_csv(out / 'vertices.csv', rows)
    labelled = [r for r in records if r['vertices'] and r['vertices']['labelled_vertices']]
    s2d = [r for r in (labelled or records) if r['codec'] == 's2d']
    qps = sorted({r['qp'] for r in s2d})
    chosen = next(r for r in s2d if r['qp'] == qps[len(qps) // 2])
    seq = next(load_sequences(evaluation.dataset, evaluation.params['num_frames'], [chosen['sequence']]))
    decoded = list(Decoder(checkpoint_path, device).decode((Path(out_dir) / chosen['bitstream']).read_bytes()))
    overlay = out / f"overlay_{seq.name}_qp{chosen['qp']}.mp4"
    write_overlay(overlay, np.stack([f for f, _ in decoded]), np.stack([v for _, v in decoded]), seq.vertices,
                  seq.confidence, float(seq.fps or evaluation.params['fps'] or 25),
                  evaluation.params['vertex_min_confidence'])
    write_json(out / 'vertices.json', dict(
        checkpoint=str(checkpoint_path), device=str(device), overlay=overlay.name,
        labels=f"{evaluation.dataset.vertices_dir} (confidence >= {evaluation.params['vertex_min_confidence']})",
        note='' if labelled else 'no teacher labels found for the test sequences: accuracy not measured',
        rows=rows))
    return rows
