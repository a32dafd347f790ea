"""The config schema: every key of ``model_params`` and ``train_params`` and its default, written once.

A config (``config/*.yaml``, or the 'config' of a checkpoint) is a dict of sections. :func:`resolve_config` checks
it against :data:`SCHEMA` and returns a copy with every default filled in; a misspelled key anywhere in
``model_params`` or ``train_params`` (``warped_skip:`` for ``warped_skips:``) or a misspelled section name is one
:class:`ConfigError` naming the key, its section, the closest valid key and all of them. The networks, the losses
and the training loop read the resolved sections with ``section[key]``: no default is written at the point of use.

The sections in :data:`OPEN_SECTIONS` are checked where they are used (``dataset_params``: the arguments of
``frames_dataset.FramesDataset``; ``rd_params``: ``evaluation/params.py``; ``codec_params``: ``coding/codec.py``;
``visualizer_params``: ``logger.Visualizer``) and pass through unchanged.
"""
import copy
import difflib


class ConfigError(ValueError):
    """A config has an unknown key or section, lacks a required one, or holds a section that is not a mapping."""


class _Required:
    """Marker of a key that has no default: the config must give it."""

    def __repr__(self):
        return 'REQUIRED'


#: marks a key without a default in :data:`SCHEMA`
REQUIRED = _Required()

#: section -> {key: default}; a dict value is a sub-section with its own keys. A missing sub-section is created from
#: its defaults unless one of its keys is REQUIRED (then the sub-section itself is required).
SCHEMA = {
    'model_params': {
        'common_params': {'num_kp': REQUIRED, 'image_channel': REQUIRED, 'feature_channel': REQUIRED},
        'kp_detector_params': {'temperature': REQUIRED, 'block_expansion': REQUIRED, 'max_features': REQUIRED,
                               'num_blocks': REQUIRED, 'scale_factor': REQUIRED, 'reshape_depth': REQUIRED,
                               'reshape_channel': REQUIRED},
        'generator_params': {'block_expansion': REQUIRED, 'max_features': REQUIRED, 'num_down_blocks': REQUIRED,
                             'reshape_depth': REQUIRED, 'num_resblocks': REQUIRED,
                             'warped_skips': False, 'blend_warped_source': False,
                             'keypoint_heatmaps': False},
        'dense_motion_params': {'block_expansion': REQUIRED, 'max_features': REQUIRED, 'num_blocks': REQUIRED,
                                'compress': REQUIRED, 'kp_variance': REQUIRED, 'kernel_size': 7, 'scale_factor': 1},
        'vertex_head_params': {'num_vertices': REQUIRED, 'num_resblocks': REQUIRED, 'channels': REQUIRED,
                               'pool_size': REQUIRED},
        'discriminator_params': {'scales': [1], 'num_channels': 3, 'block_expansion': 64, 'num_blocks': 4,
                                 'max_features': 512, 'sn': True},
    },
    'train_params': {
        'num_epochs': REQUIRED, 'num_repeats': REQUIRED, 'epoch_milestones': REQUIRED, 'batch_size': REQUIRED,
        'lr_generator': REQUIRED, 'lr_kp_detector': REQUIRED, 'lr_discriminator': REQUIRED, 'scales': REQUIRED,
        'adam_betas': [0.5, 0.999], 'dataloader_workers': 0, 'checkpoint_freq': 1, 'grad_clip_norm': None,
        'mixed_precision': False, 'gan_mode': 'hinge', 'perceptual_backbone': 'vgg19', 'seed': 0,
        'keypoint_guidance_landmarks': None,
        'transform_params': {'sigma_affine': 0.05, 'sigma_tps': 0.005, 'points_tps': 5},
        'loss_weights': {'perceptual': 0, 'generator_gan': 0, 'discriminator_gan': 0, 'feature_matching': 0,
                         'equivariance_value': 0, 'keypoint_prior': 0, 'vertex': 0, 'keypoint_guidance': 0,
                         'motion_flow': 0, 'keypoint_flow': 0},
        'validation': {'num_videos': 4, 'num_frames': 16},
        # reconstruction loss weighted on teacher-label boxes (modules/model.region_weight_map); weight 0 = off
        'region_weights': {'weight': 0, 'ranges': [], 'margin': 0.1},
    },
}

#: top-level sections checked where they are used (see the module docstring); they pass through unchanged
OPEN_SECTIONS = ('dataset_params', 'codec_params', 'rd_params', 'visualizer_params')


def _has_required(schema):
    return any(value is REQUIRED or (isinstance(value, dict) and _has_required(value)) for value in schema.values())


def _unknown_key_error(where, key, valid):
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    return ConfigError(f"{where}unknown key '{key}'{hint}; valid keys: {', '.join(sorted(valid))}")


def _complete(values, schema, path):
    """Copy of the mapping ``values`` checked against ``schema`` with the defaults filled in (recursively)."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section {path} must be a mapping of keys to values, got {type(values).__name__}")
    for key in values:
        if key not in schema:
            raise _unknown_key_error(f"config section {path}: ", key, schema)
    out = {}
    for key, default in schema.items():
        if isinstance(default, dict):
            if key not in values and _has_required(default):
                raise ConfigError(f"config section {path} lacks its sub-section '{key}' "
                                  f"(keys: {', '.join(default)}); compare with config/ted384.yaml")
            out[key] = _complete(values.get(key, {}), default, f'{path}.{key}')
        elif key in values:
            out[key] = copy.deepcopy(values[key])
        elif default is REQUIRED:
            raise ConfigError(f"config section {path} lacks the required key '{key}'; compare with "
                              f"config/ted384.yaml")
        else:
            out[key] = copy.deepcopy(default)
    return out


def resolve_section(name, values):
    """One top-level section (``'model_params'`` or ``'train_params'``) checked, with its defaults filled in.

    Args:
        name: a key of :data:`SCHEMA`.
        values: the config's section (a dict; not modified).
    Returns:
        a new dict holding every key of ``SCHEMA[name]`` (sub-sections included).
    Raises:
        ConfigError: an unknown key (named with its section, the closest valid key and all valid keys), a missing
            required key or sub-section, or a section that is not a mapping.
    """
    return _complete(values, SCHEMA[name], name)


def resolve_config(config, source=None):
    """Check a whole config and return a copy with the defaults of ``model_params`` / ``train_params`` filled in.

    Args:
        config: the config dict (not modified). ``model_params`` is required; ``train_params`` is resolved when
            present (inference checkpoints may lack it); the :data:`OPEN_SECTIONS` are copied unchanged.
        source: where the config came from (a path), prefixed to the error message.
    Returns:
        a new config dict.
    Raises:
        ConfigError: an unknown section or key (see :func:`resolve_section`), or no ``model_params``.
    """
    prefix = f"{source}: " if source else ''
    if not isinstance(config, dict):
        raise ConfigError(f"{prefix}a config is a mapping of sections, got {type(config).__name__}")
    valid = tuple(SCHEMA) + OPEN_SECTIONS
    for name in config:
        if name not in valid:
            raise _unknown_key_error(f"{prefix}config: ", name, valid)
    if 'model_params' not in config:
        raise ConfigError(f"{prefix}config has no model_params section; compare with config/ted384.yaml")
    out = copy.deepcopy(config)
    try:
        for name in SCHEMA:
            if name in config:
                out[name] = resolve_section(name, config[name])
    except ConfigError as error:
        raise ConfigError(f"{prefix}{error}") from None
    return out
