"""Rate control: choose the key-frame QP and the refresh threshold so that a clip lands on a target bitrate.

The rate of a Sparse2Dense stream is mostly its key-reference frames: their number (set by the refresh threshold
D, coding/codec.py) times their size (set by the QP). For each threshold of a ladder, from "cuts only" to frequent
refreshes, a search over the QP (secant steps in log key-frame rate, inside a shrinking bracket)
finds the QPs whose full closed-loop encode lands within the tolerance of the target (each step predicts the QP from
the last encode's bit account: the key frames' bits scale by 2 every 6 QPs, the keypoints' stay). Among those, the one whose
frames, as the decoder will render them, have the highest mean PSNR against the originals (measured by the encoder
itself, see ``Encoder.psnr``) wins. Every trial is a complete encode (multi-pass): the result is exact, not a model.

The ladder stops early: when even QP 63 overshoots at some threshold, smaller thresholds (more key frames) cannot
do better. A threshold whose finest QP still undershoots is left after those two encodes. An encode is not repeated at a smaller threshold when no frame it kept dropped that far
(``Encoder.max_drop``): it would code the same stream.

With refreshes the rate is a staircase in the QP, not a slope: a coarser key frame renders worse frames, which trigger
more key frames, so the count (and the rate) can jump over the tolerance window between neighbouring QPs (measured on
full07 at 4 kbps: QP 52 -> 3.5 kbps with 4 key frames, QP 51 -> 5.7 kbps with 7). When no ladder encode lands, the
threshold is refined at fixed QP instead (bisection in dB between the encodes of that QP that over- and undershoot),
at the QPs that came closest: at fixed QP each extra key frame adds one key frame's bits, a step that fits in the
window whenever one key frame costs less than 2 x tolerance x target.
"""
import dataclasses
import math

import numpy as np

#: refresh thresholds tried, dB (inf: key frames only at scene cuts; frames are still rendered to measure quality)
THRESHOLDS = (math.inf, 8.0, 5.0, 3.0)
QP_RANGE = (17, 63)
TOLERANCE = 0.10
MAX_TRIALS_PER_THRESHOLD = 6
#: threshold refinement when the ladder misses: bisection steps per QP, QPs tried, and the threshold bracket (dB)
#: used where the ladder left one side of it open
MAX_REFINE_STEPS = 5
REFINE_QPS = 2
REFINE_BRACKET = (1.0, 12.0)
#: the QP step that about halves a VVC intra picture's size (the first guess; later ones use the measured slope)
QP_PER_OCTAVE = 6.0


@dataclasses.dataclass
class Trial:
    """One full encode. qp, threshold (dB), kbps (total), key_kbps (the key frames' VVC sections), psnr (mean dB of
    the decoder's frames), key_frames (count), max_drop (Encoder.max_drop, dB)."""
    qp: int
    threshold: float
    kbps: float
    key_kbps: float
    psnr: float
    key_frames: int
    max_drop: float


@dataclasses.dataclass
class RateControlResult:
    """What :func:`encode_at_rate` chose and tried.

    Attributes:
        data: the chosen ``.s2d`` bytes. qp, threshold: the chosen settings. kbps: its rate. target_kbps.
        within_tolerance: True if kbps is within the tolerance of the target (else the closest trial was kept).
        trials: every :class:`Trial`, in the order run.
    """
    data: bytes
    qp: int
    threshold: float
    kbps: float
    target_kbps: float
    within_tolerance: bool
    trials: list


def encode_at_rate(encoder, frames, fps, target_kbps, tolerance=TOLERANCE, thresholds=THRESHOLDS,
                   qp_range=QP_RANGE, on_trial=None):
    """Encode a clip at ``target_kbps`` kbit/s +- ``tolerance`` (multi-pass).

    Args:
        encoder: a coding.codec.Encoder; its ``qp`` and ``refresh_threshold`` are set by this function and left at
            the chosen values, and its result attributes (account, keypoints, psnr, ...) describe the chosen encode.
        frames: a re-iterable of uint8 (H, W, 3) frames (an array, a list, or an object whose ``__iter__`` reads
            the video again); it is read once per trial.
        fps: frame rate (frames/s).
        target_kbps: the wanted average rate in kbit/s, > 0.
        tolerance: accepted relative deviation (0.1 = +-10 %).
        thresholds: the refresh thresholds to try, dB (see module doc).
        qp_range: (lowest, highest) key-frame QP to try.
        on_trial: optional callable given each :class:`Trial` as it completes (progress).
    Returns: :class:`RateControlResult`.
    Raises: ValueError for a bad target or tolerance; what Encoder.encode raises.
    """
    if not (math.isfinite(target_kbps) and target_kbps > 0):
        raise ValueError(f'target rate must be a positive number of kbit/s, got {target_kbps}')
    if not 0 < tolerance < 1:
        raise ValueError(f'tolerance must be in (0, 1), got {tolerance}')
    low, high = qp_range
    trials, cache = [], {}
    best = None                                  # (score, Trial, data, encoder state)

    def run(qp, threshold):
        nonlocal best
        if (qp, threshold) in cache:
            return cache[(qp, threshold)]
        for (other_qp, other), trial in list(cache.items()):   # the same stream, coded already
            if other_qp == qp and threshold < other and trial.max_drop < threshold:
                cache[(qp, threshold)] = trial
                return trial
        encoder.qp, encoder.refresh_threshold = qp, threshold
        data = encoder.encode(frames, fps=fps)
        account = encoder.account
        trial = Trial(qp, threshold, account.kbps, account.kbps * sum(account.key_frame_bits) / account.total_bits,
                      float(np.mean(encoder.psnr)), len(account.key_frames), encoder.max_drop)
        trials.append(trial)
        cache[(qp, threshold)] = trial
        error = abs(trial.kbps / target_kbps - 1)
        score = (error <= tolerance, trial.psnr if error <= tolerance else -error)
        if best is None or score > best[0]:
            best = (score, trial, data, _state(encoder))
        if on_trial:
            on_trial(trial)
        return trial

    for threshold in thresholds:
        top = run(high, threshold)
        if top.kbps > target_kbps * (1 + tolerance):
            break                                # even the cheapest key frames overshoot; more of them cannot help
        bottom = run(low, threshold)
        if bottom.kbps < target_kbps * (1 - tolerance):
            continue                             # even the finest key frames undershoot: refresh more often
        if any(abs(t.kbps / target_kbps - 1) <= tolerance for t in (top, bottom)):
            continue
        qp = _next_qp([bottom, top], target_kbps)
        history = [bottom, top]
        lo, hi = low + 1, high - 1               # the crossing QP lies in [lo, hi]
        for _ in range(MAX_TRIALS_PER_THRESHOLD - 1):
            qp = int(min(max(qp, lo), hi))
            trial = run(qp, threshold)
            history.append(trial)
            if abs(trial.kbps / target_kbps - 1) <= tolerance:
                break
            if trial.kbps > target_kbps:
                lo = qp + 1
            else:
                hi = qp - 1
            if lo > hi:
                break
            guess = _next_qp(history, target_kbps)
            qp = guess if lo <= guess <= hi and (guess, threshold) not in cache else (lo + hi) // 2
    for qp in _closest_qps(trials, target_kbps, REFINE_QPS):
        if best[0][0]:
            break
        _refine_threshold(run, qp, trials, target_kbps, tolerance)
    score, trial, data, state = best
    _restore(encoder, state, trial)
    return RateControlResult(data=data, qp=trial.qp, threshold=trial.threshold, kbps=trial.kbps,
                             target_kbps=float(target_kbps), within_tolerance=score[0], trials=trials)


def _closest_qps(trials, target_kbps, count):
    """The ``count`` QPs whose refreshing encodes (finite threshold) came closest to the target, closest first."""
    qps = []
    for trial in sorted(trials, key=lambda t: abs(math.log(t.kbps / target_kbps))):
        if math.isfinite(trial.threshold) and trial.qp not in qps:
            qps.append(trial.qp)
    return qps[:count]


def _refine_threshold(run, qp, trials, target_kbps, tolerance):
    """Bisect the refresh threshold at a fixed QP: a smaller threshold refreshes more often (more rate). The bracket
    starts from this QP's encodes that overshoot (their largest threshold) and undershoot (their smallest), else
    REFINE_BRACKET; stops on the first encode within the tolerance (``run`` keeps the best)."""
    low, high = REFINE_BRACKET                   # low: too many key frames, high: too few
    for trial in trials:
        if trial.qp == qp and math.isfinite(trial.threshold):
            if trial.kbps > target_kbps:
                low = max(low, trial.threshold)
            else:
                high = min(high, trial.threshold)
    for _ in range(MAX_REFINE_STEPS):
        if high - low < 0.05:
            return
        threshold = round((low + high) / 2, 2)
        trial = run(qp, threshold)
        if abs(trial.kbps / target_kbps - 1) <= tolerance:
            return
        if trial.kbps > target_kbps:
            low = threshold
        else:
            high = threshold


def _next_qp(history, target_kbps):
    """QP expected to give target_kbps from the trials so far at one threshold (latest last): the key frames' share
    of the rate is taken as exponential in QP, with the slope of the last two trials (else QP_PER_OCTAVE QPs per
    factor 2), and the rest (keypoints, header) as constant."""
    last = history[-1]
    needed = target_kbps - (last.kbps - last.key_kbps)
    per_octave = QP_PER_OCTAVE
    if len(history) > 1:
        previous = history[-2]
        if previous.key_kbps > 0 and last.key_kbps > 0 and previous.key_kbps != last.key_kbps:
            per_octave = (last.qp - previous.qp) / math.log2(previous.key_kbps / last.key_kbps)
            per_octave = min(max(per_octave, QP_PER_OCTAVE / 2), 4 * QP_PER_OCTAVE)
    if needed <= 0 or last.key_kbps <= 0:
        return last.qp + int(per_octave)
    return int(round(last.qp + per_octave * math.log2(last.key_kbps / needed)))


_STATE = ('account', 'keypoints', 'quantized', 'key_frame', 'psnr')


def _state(encoder):
    return {name: getattr(encoder, name) for name in _STATE}


def _restore(encoder, state, trial):
    for name, value in state.items():
        setattr(encoder, name, value)
    encoder.qp, encoder.refresh_threshold = trial.qp, trial.threshold
