"""``rd_params``: the evaluation protocol section of a config, with the paper's / GFVC defaults.

    rd_params:
      root_dir: null              # data root whose test/ split is evaluated (null: dataset_params.root_dir)
      videos: null                # entry stems to evaluate (null: the whole test split)
      num_frames: 150             # first frames of each sequence (paper: 150)
      fps: null                   # frame rate for kbps: null = each clip's own; a number forces it (GFVC: 25).
                                  # results.csv always has both kbps (this choice) and kbps_native.
      key_qps: [22, 32, 42, 52]   # key-reference frame QPs of the generative codec (and the frozen baseline)
      anchor_qps: [37, 42, 47, 52]  # VVC anchor QPs (whole sequence, low delay)
      kp_steps: null              # keypoint quantisation steps to sweep (null: [codec_params.kp_step])
      refresh_thresholds: [null]  # key-frame refresh thresholds to sweep with key_qps, dB (null: key frames only at
                                  # scene cuts); more than one: the s2d curve is each clip's Pareto front
      inter_key_frames: null      # refreshed key frames predicted from earlier ones (coding/codec.py); null: the
                                  # codec's default (on where the VVC backend can: vvenc)
      refine_steps: null          # encoder-side keypoint refinement steps (coding/refine.py); null: the checkpoint's
                                  # codec_params.refine_steps (else coding.codec.DEFAULT_REFINE_STEPS)
      vvc_backend: auto           # auto (vtm when VTM_ENCODER/VTM_DECODER/VTM_CFG_DIR are set, else vvenc)
      metrics: [psnr, psnr_yuv, ssim, ms_ssim, vmaf, dists, lpips_vgg, lpips_alex, fvd, motion]
                                  # motion: motion fidelity (evaluation/motion.py), reported per point, no BD-rate
      bd_min_overlap: 0.75        # minimum overlap of the quality ranges for a BD-rate (else 'n/a' + reason)
      fvd_stride: 16              # frames between FVD clip starts (clips are 16 frames)
      vertex_min_confidence: 0.5  # teacher labels below this confidence are ignored
      batch_size: 8               # frames per metric forward pass
"""
from coding import vvc
from coding.codec import refine_steps_of
from evaluation.metrics import ALL_METRICS

DEFAULTS = dict(root_dir=None, videos=None, num_frames=150, fps=None, key_qps=[22, 32, 42, 52],
                anchor_qps=[37, 42, 47, 52], kp_steps=None, refresh_thresholds=[None], inter_key_frames=None,
                refine_steps=None, vvc_backend='auto', metrics=list(ALL_METRICS),
                bd_min_overlap=0.75, fvd_stride=16, vertex_min_confidence=0.5, batch_size=8)


def _qps(name, values):
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"rd_params.{name} must be a non-empty list of integer QPs, got {values!r}")
    for qp in values:
        if not isinstance(qp, int) or not 0 <= qp <= 63:
            raise ValueError(f"rd_params.{name}: QP {qp!r} is not an integer in [0, 63]")
    return sorted(set(values))


def rd_params(config):
    """The config's rd_params merged over DEFAULTS, checked.

    Args:
        config: full config dict (``rd_params`` optional; ``codec_params.kp_step`` used when kp_steps is null).
    Returns:
        dict with every key of DEFAULTS; ``kp_steps`` is a list (``[None]`` = the codec's own default).
    Raises:
        ValueError: unknown keys or bad values (the message names the key and what is expected).
    """
    given = config.get('rd_params') or {}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown rd_params keys {unknown}; allowed: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **given}
    params['key_qps'] = _qps('key_qps', params['key_qps'])
    params['anchor_qps'] = _qps('anchor_qps', params['anchor_qps'])
    if not isinstance(params['num_frames'], int) or params['num_frames'] < 2:
        raise ValueError(f"rd_params.num_frames must be an integer >= 2, got {params['num_frames']!r}")
    if params['fps'] is not None and not (isinstance(params['fps'], (int, float)) and params['fps'] > 0):
        raise ValueError(f"rd_params.fps must be null (each clip's own) or a positive number, got {params['fps']!r}")
    if params['vvc_backend'] not in ('auto',) + vvc.BACKENDS:
        raise ValueError(f"rd_params.vvc_backend must be auto or one of {', '.join(vvc.BACKENDS)}, got "
                         f"{params['vvc_backend']!r}")
    unknown_metrics = sorted(set(params['metrics']) - set(ALL_METRICS))
    if unknown_metrics:
        raise ValueError(f"rd_params.metrics: unknown {unknown_metrics}; choose from {list(ALL_METRICS)}")
    if params['kp_steps'] is None:
        params['kp_steps'] = [(config.get('codec_params') or {}).get('kp_step')]
    elif not isinstance(params['kp_steps'], (list, tuple)) or not params['kp_steps']:
        raise ValueError(f"rd_params.kp_steps must be null or a non-empty list, got {params['kp_steps']!r}")
    thresholds = params['refresh_thresholds']
    if (not isinstance(thresholds, (list, tuple)) or not thresholds
            or any(t is not None and not (isinstance(t, (int, float)) and t >= 0) for t in thresholds)):
        raise ValueError(f"rd_params.refresh_thresholds must be a non-empty list of null (no refresh) or numbers "
                         f">= 0 (dB), got {thresholds!r}")
    params['refresh_thresholds'] = sorted(set(thresholds), key=lambda t: (t is not None, -(t or 0)))
    if params['inter_key_frames'] not in (None, True, False):
        raise ValueError(f"rd_params.inter_key_frames must be null (the codec's default), true or false, got "
                         f"{params['inter_key_frames']!r}")
    if params['refine_steps'] is not None:
        try:
            refine_steps_of(config, params['refine_steps'])
        except ValueError as error:
            raise ValueError(f"rd_params.{error} (or null: the checkpoint's default)") from None
    if not 0 <= params['bd_min_overlap'] <= 1:
        raise ValueError(f"rd_params.bd_min_overlap must be in [0, 1], got {params['bd_min_overlap']!r}")
    return params
