"""Training objectives of Sparse2Dense (paper sec. 2.4), computed inside ``forward`` so they run on every device.

Generator side: VGG19 perceptual pyramid, GAN (hinge or least squares) + feature matching, equivariance of the
keypoints under random affine + thin-plate-spline warps, keypoint prior and the confidence-weighted vertex loss;
recipe additions: keypoint guidance by teacher landmarks, a reconstruction loss weighted on teacher-label boxes and
the ``deformation`` and the keypoints supervised by the optical flow of the training pair (``motion_flow``,
``keypoint_flow``).
Each sub-network is called exactly once per ``forward`` (inputs are concatenated along the batch), which keeps
DistributedDataParallel's gradient bookkeeping simple and saves time.
"""

import torch
import torch.nn.functional as F
from torch import nn

from modules.config import resolve_section
from modules.generator import OcclusionAwareGenerator
from modules.util import ALIGN_CORNERS, AntiAliasInterpolation2d, make_coordinate_grid
from modules.weights import WeightsNotFoundError, read_weights

#: torchvision's ImageNet VGG19 weights file, looked up in ``$TORCH_HOME/hub/checkpoints`` (torch.hub.get_dir()).
VGG19_FILE = 'vgg19-dcbb9e9d.pth'
#: indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in ``torchvision.models.vgg19().features``
VGG19_LAYERS = (1, 6, 11, 20, 29)


class ImagePyramid(nn.Module):
    """Anti-aliased image pyramid. Input (B, C, H, W) -> dict ``{scale: (B, C, H*scale, W*scale)}``."""

    def __init__(self, scales, channels=3):
        super().__init__()
        self.scales = list(scales)
        self.downs = nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in self.scales)

    def forward(self, x):
        return {s: down(x) for s, down in zip(self.scales, self.downs)}


class VGG19Features(nn.Module):
    """Frozen VGG19 feature extractor returning relu1_1 ... relu5_1 (the perceptual loss of FOMM / FV2V).

    Args:
        pretrained: load torchvision's ImageNet weights from the torch hub cache (no download is attempted);
            False gives a randomly initialised, fixed network (seed 0): the offline option ``vgg19_random``.
    Input: (B, 3, H, W) in [0, 1]. Output: list of 5 feature maps.
    Raises:
        WeightsNotFoundError (a FileNotFoundError): pretrained weights are not in the cache; the message names the
            file and the folder (:func:`modules.weights.not_found_message`).
        WeightsFileError (a ValueError): the file is refused (not plain tensors, see
            :func:`modules.weights.load_state_dict_file`).
    """

    def __init__(self, pretrained):
        super().__init__()
        import torchvision
        if pretrained:
            try:
                state = read_weights(VGG19_FILE)
            except WeightsNotFoundError as err:
                raise WeightsNotFoundError(
                    f"perceptual_backbone 'vgg19': {err} (set TORCH_HOME to move that folder; the file is "
                    f"https://download.pytorch.org/models/{VGG19_FILE}), or set train_params.perceptual_backbone to "
                    f"'vgg19_random' or 'none' for an offline run") from None
            vgg = torchvision.models.vgg19()
            vgg.load_state_dict(state)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                vgg = torchvision.models.vgg19()
        self.features = vgg.features[:VGG19_LAYERS[-1] + 1]
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x):
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG19_LAYERS:
                out.append(x)
        return out


class RandomTransform:
    """Random affine + thin-plate-spline warp of normalised 2D coordinates (equivariance loss, FOMM / FV2V).

    Args:
        batch_size, device: of the frames to warp.
        sigma_affine: std of the affine perturbation around the identity.
        sigma_tps: std of the TPS control-point weights.
        points_tps: TPS control points per side (points_tps**2 in all).
    """

    def __init__(self, batch_size, device, sigma_affine, sigma_tps, points_tps):
        eye = torch.eye(2, 3, device=device)
        self.theta = eye + sigma_affine * torch.randn(batch_size, 2, 3, device=device)
        self.control_points = make_coordinate_grid((points_tps, points_tps), device=device).view(-1, 2)
        self.control_params = sigma_tps * torch.randn(batch_size, 1, points_tps ** 2, device=device)

    def warp_coordinates(self, coords):
        """(B, N, 2) normalised (x, y) -> (B, N, 2) warped coordinates."""
        theta = self.theta.to(coords.dtype)
        out = torch.einsum('bij,bnj->bni', theta[:, :, :2], coords) + theta[:, None, :, 2]
        dist2 = ((coords[:, :, None] - self.control_points[None, None].to(coords.dtype)) ** 2).sum(-1)
        kernel = dist2 * torch.log(dist2 + 1e-6)  # TPS radial basis r^2 log r^2
        return out + (kernel * self.control_params.to(coords.dtype)).sum(-1, keepdim=True)

    def transform_frame(self, frame):
        """Warp frames (B, C, H, W): output(p) = frame(T(p)), reflection padding."""
        b, _, h, w = frame.shape
        grid = make_coordinate_grid((h, w), frame.dtype, frame.device).view(1, -1, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode='reflection', align_corners=ALIGN_CORNERS)


def keypoint_prior(keypoints, distance=0.1, target_depth=0.33):
    """FV2V keypoint prior: pairwise hinge ``sum_{i!=j} max(0, distance - |k_i - k_j|^2)`` plus
    ``|mean depth - target_depth|``, averaged over the batch.

    Args:
        keypoints: (B, K, 3) keypoints in [-1, 1].
    Returns:
        scalar tensor >= 0.
    """
    dist2 = ((keypoints[:, :, None] - keypoints[:, None]) ** 2).sum(-1)
    k = keypoints.shape[1]
    off_diag = ~torch.eye(k, dtype=torch.bool, device=keypoints.device)
    hinge = F.relu(distance - dist2)[:, off_diag].sum(-1)
    depth = (keypoints[:, :, 2].mean(-1) - target_depth).abs()
    return (hinge + depth).mean()


def vertex_loss(pred, target, confidence):
    """Confidence-weighted L1 on normalised vertex coordinates (paper's vertex loss).

    Args:
        pred, target: (B, N, 2) in normalised image coordinates.
        confidence: (B, N) in [0, 1]; 0 marks a missing label (ignored).
    Returns:
        scalar tensor; 0 (still connected to the graph) when no label is present.
    """
    weight = confidence.unsqueeze(-1)
    return (weight * (pred - target).abs()).sum() / (2 * confidence.sum()).clamp(min=1.0)


def keypoint_guidance(keypoints, landmarks, confidence):
    """Teacher guidance of the learned keypoints: confidence-weighted L1 between each keypoint's (x, y) and one
    teacher landmark assigned to it (e.g. lips, eye corners, wrists of MediaPipe Holistic).

    An addition to the paper's losses (recipe option ``loss_weights.keypoint_guidance`` with
    ``train_params.keypoint_guidance_landmarks``): unsupervised keypoints learned in a short budget stay nearly
    still on talking heads, so the decoded mouth and head do not move; tying them to moving landmarks makes the
    transmitted keypoints carry that motion. The depth z stays unsupervised.

    Args:
        keypoints: (B, K, 3) keypoints in [-1, 1].
        landmarks: (B, K, 2) teacher (x, y) in [-1, 1], the same normalisation as the keypoints.
        confidence: (B, K) in [0, 1]; 0 ignores a landmark (not found or outside the frame).
    Returns:
        scalar tensor >= 0 (0, still connected to the graph, when no landmark is present).
    """
    return vertex_loss(keypoints[..., :2], landmarks, confidence)


def region_weight_map(landmarks, confidence, ranges, weight, margin, size):
    """Per-pixel weights of the reconstruction loss that stress regions found by the vertex teacher (face, hands).

    For every sample and every landmark range, the box around that range's confident labels, grown by ``margin`` of
    its width / height on each side, gets weight ``1 + weight``, the rest of the frame 1 (overlapping boxes count
    once); each sample's map is then divided by its mean, so the loss keeps its scale and only moves emphasis to the
    boxes. A range with no confident label adds no box. An addition to the paper's losses (issue 9's candidate "a loss
    weighted on face and hands, using the label boxes"): at 128x128 a talking head's mouth is a few pixels of the
    frame, and an unweighted L1 pyramid barely sees whether it opens.

    Args:
        landmarks: (B, N, 2) teacher (x, y) in [-1, 1] (pixel centres of the corners at -1 and 1).
        confidence: (B, N) in [0, 1]; 0 marks a missing label.
        ranges: list of label groups, one box each: a pair [start, stop) is an index range into N (e.g. Holistic:
            face [33, 501], hands [501, 522], [522, 543]); a list of three or more indices names those labels
            (e.g. the lips' top, bottom and corners, FaceMesh 0, 17, 61, 291: [33, 50, 94, 324]).
        weight: extra weight inside the boxes (>= 0; 0 gives all ones).
        margin: box growth per side as a fraction of its size (>= 0).
        size: (H, W) of the map.
    Returns:
        (B, 1, H, W) float tensor, mean 1 per sample.
    """
    b = landmarks.shape[0]
    grid = make_coordinate_grid(size, landmarks.dtype, landmarks.device)            # (H, W, 2)
    inside = torch.zeros(b, *size, dtype=torch.bool, device=landmarks.device)
    for group in ranges:
        index = slice(*group) if len(group) == 2 else list(group)                    # a range is a view
        points, found = landmarks[:, index], confidence[:, index] > 0                # (B, n, 2), (B, n)
        low = torch.where(found[..., None], points, torch.full_like(points, float('inf'))).amin(1)   # (B, 2)
        high = torch.where(found[..., None], points, torch.full_like(points, -float('inf'))).amax(1)
        grow = margin * (high - low).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        low, high = (low - grow)[:, None, None], (high + grow)[:, None, None]           # (B, 1, 1, 2)
        box = ((grid[None] >= low) & (grid[None] <= high)).all(-1)                      # (B, H, W); empty if none
        inside |= box & found.any(1)[:, None, None]
    weights = 1.0 + weight * inside[:, None].to(landmarks.dtype)
    return weights / weights.mean((2, 3), keepdim=True)


def _label_group(group, num_vertices):
    """Whether ``group`` is a valid entry of ``region_weights.ranges`` for ``num_vertices`` labels (None: unknown):
    a pair [start, stop) with 0 <= start < stop <= N, or three or more indices in [0, N)."""
    if not (isinstance(group, (list, tuple)) and len(group) >= 2 and all(isinstance(i, int) for i in group)):
        return False
    limit = num_vertices if num_vertices is not None else max(group) + 1
    if len(group) == 2:
        return 0 <= group[0] < group[1] <= limit
    return all(0 <= i < limit for i in group)


def flow_residual(deformation, flow):
    """The generator's 2D motion minus the teacher's, (B, H, W, 2) in normalised coordinates (x, y).

    The 2D motion that warps the key frame's skips and image (the depth-averaged x, y of ``deformation``,
    :meth:`modules.generator.OcclusionAwareGenerator.flow_2d`) is upsampled to the flow's size and compared with the
    sampling grid of the flow (identity + ``flow``).

    Args:
        deformation: (B, D, h, w, 3) sampling grid of the dense motion network.
        flow: (B, 2, H, W) backward flow from driving to source in normalised coordinates
            (:func:`optical_flow.flow_target`).
    """
    size = tuple(flow.shape[2:])
    target = make_coordinate_grid(size, flow.dtype, flow.device) + flow.permute(0, 2, 3, 1)
    return OcclusionAwareGenerator.flow_2d(deformation, size) - target


def flow_loss(deformation, flow, confidence):
    """How far the generator's motion is from the teacher's optical flow (recipe addition, issue 9): the L1 norm of
    :func:`flow_residual`, averaged over x, y and the confident pixels. Without it the motion is learnt only through
    the rendered frame, where the generator can make up for a wrong warp, and the decoded person stays where the key
    frame has them.

    Args:
        deformation, flow: as :func:`flow_residual`. confidence: (B, 1, H, W) per-pixel weights in [0, 1].
    Returns:
        scalar in normalised units (0.0157 is one pixel at 128x128: 2 / 127).
    """
    weight = confidence.permute(0, 2, 3, 1)
    return (flow_residual(deformation, flow).abs() * weight).sum() / (2 * weight.sum()).clamp(min=1.0)


def _pixels_per_unit(flow):
    """(2,) pixels per normalised unit in x, y of the frames of ``flow`` (B, 2, H, W): (W - 1) / 2, (H - 1) / 2."""
    height, width = flow.shape[2:]
    return torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=flow.dtype, device=flow.device)


def flow_endpoint_error(deformation, flow, confidence):
    """Mean end-point error of the generator's motion against the teacher's flow, per sample, in pixels of the
    flow's frame size (the optical-flow literature's EPE over the confident pixels; with the identity as
    ``deformation`` it is the mean flow magnitude, the error of no motion at all).

    Args:
        deformation, flow: as :func:`flow_residual`. confidence: (B, 1, H, W) per-pixel weights in [0, 1].
    Returns:
        (B,) float tensor; NaN for a sample without a confident pixel.
    """
    error = (flow_residual(deformation, flow) * _pixels_per_unit(flow)).norm(dim=-1)
    weight = confidence[:, 0]
    return (error * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))


def keypoint_flow_residual(kp_source, kp_driving, flow, confidence):
    """Each keypoint's x, y displacement from the driving to the source frame (its sparse motion,
    ``modules.dense_motion.sparse_motions``) minus the teacher's flow read at the driving keypoint (bilinear; the
    reading position gets no gradient), and the flow's confidence there.

    Args:
        kp_source, kp_driving: keypoint tensors (B, K, 3) in [-1, 1].
        flow: (B, 2, H, W) backward flow from driving to source in normalised coordinates.
        confidence: (B, 1, H, W) per-pixel weights in [0, 1].
    Returns:
        (residual (B, K, 2) in normalised coordinates, weight (B, K) in [0, 1]).
    """
    where = kp_driving[:, :, None, :2].detach()                                   # (B, K, 1, 2)
    at = F.grid_sample(flow, where, align_corners=ALIGN_CORNERS)[..., 0].permute(0, 2, 1)        # (B, K, 2)
    weight = F.grid_sample(confidence, where, align_corners=ALIGN_CORNERS)[:, 0, :, 0]           # (B, K)
    return kp_source[..., :2] - kp_driving[..., :2] - at, weight


def keypoint_flow_loss(kp_source, kp_driving, flow, confidence):
    """Keypoints that move with the image (recipe addition, issue 9): the L1 norm of
    :func:`keypoint_flow_residual`, averaged over x, y and the keypoints weighted by the flow's confidence. The dense
    motion can only mix the keypoints' translations; measured on the validation clips, the shipped model's keypoint
    displacements are 4.7 px from the flow at 128x128 where the flow itself is 5.7 px long (docs/TRAINING-flow.md).

    Args: as :func:`keypoint_flow_residual`. Returns: scalar in normalised units.
    """
    residual, weight = keypoint_flow_residual(kp_source, kp_driving, flow, confidence)
    return (residual.abs().sum(-1) * weight).sum() / (2 * weight.sum()).clamp(min=1.0)


def keypoint_flow_error(kp_source, kp_driving, flow, confidence):
    """Mean end-point error in pixels (of the flow's frame size) of the keypoints' displacements against the flow at
    them (:func:`keypoint_flow_residual`), per sample, weighted by the confidence; NaN without a confident keypoint.
    With ``kp_source`` = ``kp_driving`` it is the flow's magnitude at the keypoints (keypoints that do not move)."""
    residual, weight = keypoint_flow_residual(kp_source, kp_driving, flow, confidence)
    return ((residual * _pixels_per_unit(flow)).norm(dim=-1) * weight).sum(1) / weight.sum(1)


def gan_loss(logits, target, mode):
    """GAN term on patch logits (B, 1, h, w) -> scalar.

    ``target`` 'real' / 'fake' for the discriminator, 'generator' for the generator. ``mode`` 'hinge':
    relu(1 - x), relu(1 + x), -x; 'ls' (least squares): (1 - x)^2, x^2, (1 - x)^2; all averaged.
    Raises:
        ValueError: unknown mode or target.
    """
    if mode not in ('hinge', 'ls'):
        raise ValueError(f"train_params.gan_mode must be 'hinge' or 'ls', got {mode!r}")
    if target == 'real':
        return F.relu(1 - logits).mean() if mode == 'hinge' else ((1 - logits) ** 2).mean()
    if target == 'fake':
        return F.relu(1 + logits).mean() if mode == 'hinge' else (logits ** 2).mean()
    if target == 'generator':
        return -logits.mean() if mode == 'hinge' else ((1 - logits) ** 2).mean()
    raise ValueError(f"target must be 'real', 'fake' or 'generator', got {target!r}")


def make_perceptual_backbone(name):
    """``'vgg19'`` (ImageNet, from the cache), ``'vgg19_random'`` (offline) or ``'none'`` (pixel L1 pyramid)."""
    if name == 'vgg19':
        return VGG19Features(pretrained=True)
    if name == 'vgg19_random':
        return VGG19Features(pretrained=False)
    if name == 'none':
        return None
    raise ValueError(f"train_params.perceptual_backbone must be 'vgg19', 'vgg19_random' or 'none', got {name!r}")


class GeneratorFullModel(nn.Module):
    """Generator-side forward pass and losses.

    Args:
        kp_detector, generator, vertex_head, discriminator: the networks (possibly DDP-wrapped).
        train_params: the config's ``train_params`` (``scales``, ``loss_weights``, ``transform_params``,
            ``gan_mode``, ``perceptual_backbone``), completed by :func:`modules.config.resolve_section`.
    Raises: ConfigError (a ValueError) for an unknown or missing key of ``train_params``; ValueError for a bad
    ``gan_mode`` / ``perceptual_backbone``, guidance landmarks or region-weight ranges that do not fit the networks.
    ``forward(x)``: x is a dataset batch with 'source', 'driving' (B, 3, H, W) in [0, 1], 'vertices' (B, N, 2),
    'vertex_confidence' (B, N) (also the boxes of ``train_params.region_weights``) and, for ``motion_flow`` and
    ``keypoint_flow``, 'flow'
    (B, 2, H, W) and 'flow_confidence' (B, 1, H, W) (``frames_dataset.FramesDataset(optical_flow=True)``). Returns
    ``(losses, generated)``: losses is a dict of weighted scalar terms
    ('perceptual', 'generator_gan', 'feature_matching', 'equivariance_value', 'keypoint_prior',
    'keypoint_guidance', 'vertex', 'motion_flow', 'keypoint_flow'; a term
    whose weight is 0 is left out), generated holds the generator outputs plus 'kp_source', 'kp_driving',
    'vertices' (B, N, 2).
    """

    def __init__(self, kp_detector, generator, vertex_head, discriminator, train_params):
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self.vertex_head = vertex_head
        self.discriminator = discriminator
        train_params = resolve_section('train_params', train_params)
        self.train_params = train_params
        self.weights = train_params['loss_weights']
        self.gan_mode = train_params['gan_mode']
        self.pyramid = ImagePyramid(train_params['scales'])
        self.vgg = make_perceptual_backbone(train_params['perceptual_backbone'])
        landmarks = None
        num_vertices = getattr(getattr(vertex_head, 'module', vertex_head), 'num_vertices', None)  # DDP-wrapped or not
        if self.weights['keypoint_guidance']:
            landmarks = train_params['keypoint_guidance_landmarks']
            num_kp = getattr(getattr(kp_detector, 'module', kp_detector), 'num_kp', None)
            if not landmarks or (num_kp is not None and len(landmarks) != num_kp) or (
                    num_vertices is not None and not all(0 <= i < num_vertices for i in landmarks)):
                raise ValueError(f"loss_weights.keypoint_guidance needs train_params.keypoint_guidance_landmarks: one "
                                 f"vertex-label index per keypoint ({num_kp}), each in [0, {num_vertices}), got "
                                 f"{landmarks!r}; or set loss_weights.keypoint_guidance to 0")
            landmarks = torch.tensor(landmarks, dtype=torch.long)
        self.register_buffer('guidance_landmarks', landmarks, persistent=False)
        region = train_params['region_weights']
        if region['weight']:
            bad = [r for r in region['ranges'] if not _label_group(r, num_vertices)]
            if region['weight'] < 0 or region['margin'] < 0 or not region['ranges'] or bad:
                raise ValueError(f"train_params.region_weights needs weight >= 0, margin >= 0 and ranges, a list of "
                                 f"[start, stop) vertex-label index ranges within [0, {num_vertices}] or lists of 3+ "
                                 f"label indices; got {region!r}"
                                 f"{f' (bad ranges: {bad})' if bad else ''}; or set its weight to 0")

    def perceptual(self, prediction, target, weights=None):
        """Sum over pyramid scales (and VGG layers) of mean absolute differences (B, 3, H, W) -> scalar; with
        ``weights`` (B, 1, H, W) (:func:`region_weight_map`) each difference map is weighted by them, resized to it."""
        def mean_abs(a, b):
            if weights is None:
                return (a - b).abs().mean()
            return ((a - b).abs() * F.interpolate(weights, size=a.shape[2:], mode='area')).mean()

        total = 0.0
        pred_pyr, target_pyr = self.pyramid(prediction), self.pyramid(target)
        for s in self.pyramid.scales:
            if self.vgg is None:
                total = total + mean_abs(pred_pyr[s], target_pyr[s])
                continue
            with torch.no_grad():
                target_feats = self.vgg(target_pyr[s])
            for p, t in zip(self.vgg(pred_pyr[s]), target_feats):
                total = total + mean_abs(p, t)
        return total

    def forward(self, x):
        w = self.weights
        source, driving = x['source'], x['driving']
        b = source.shape[0]
        frames = [source, driving]
        transform = None
        if w['equivariance_value']:
            transform = RandomTransform(b, source.device, **self.train_params['transform_params'])
            frames.append(transform.transform_frame(driving))
        kp_all = self.kp_detector(torch.cat(frames))
        kp_source, kp_driving = kp_all[:b], kp_all[b:2 * b]

        generated = self.generator(source, kp_source, kp_driving)
        generated.update(kp_source=kp_source, kp_driving=kp_driving)
        generated['vertices'] = self.vertex_head(generated['F_refine'])
        prediction = generated['prediction']

        losses = {}
        if w['perceptual']:
            region = self.train_params['region_weights']
            weights = None
            if region['weight']:
                weights = region_weight_map(x['vertices'], x['vertex_confidence'], region['ranges'],
                                            region['weight'], region['margin'], tuple(driving.shape[2:]))
            losses['perceptual'] = w['perceptual'] * self.perceptual(prediction, driving, weights)
        if w['generator_gan'] or w['feature_matching']:
            disc = self.discriminator(torch.cat([prediction, driving]))
            gan, fm = 0.0, 0.0
            for feats, logits in disc.values():
                gan = gan + gan_loss(logits[:b], 'generator', self.gan_mode)
                for f in feats:
                    fm = fm + (f[:b] - f[b:].detach()).abs().mean()
            if w['generator_gan']:
                losses['generator_gan'] = w['generator_gan'] * gan
            if w['feature_matching']:
                losses['feature_matching'] = w['feature_matching'] * fm
        if transform is not None:
            kp_transformed = kp_all[2 * b:, :, :2]
            losses['equivariance_value'] = w['equivariance_value'] * (
                kp_driving[:, :, :2] - transform.warp_coordinates(kp_transformed)).abs().mean()
        if w['keypoint_prior']:
            losses['keypoint_prior'] = w['keypoint_prior'] * keypoint_prior(kp_all[:2 * b])
        if self.guidance_landmarks is not None:
            index = self.guidance_landmarks
            losses['keypoint_guidance'] = w['keypoint_guidance'] * keypoint_guidance(
                kp_driving, x['vertices'][:, index], x['vertex_confidence'][:, index])
        if w['vertex']:
            losses['vertex'] = w['vertex'] * vertex_loss(generated['vertices'], x['vertices'],
                                                          x['vertex_confidence'])
        if w['motion_flow']:
            losses['motion_flow'] = w['motion_flow'] * flow_loss(generated['deformation'], x['flow'],
                                                                  x['flow_confidence'])
        if w['keypoint_flow']:
            losses['keypoint_flow'] = w['keypoint_flow'] * keypoint_flow_loss(kp_source, kp_driving, x['flow'],
                                                                               x['flow_confidence'])
        return losses, generated


class DiscriminatorFullModel(nn.Module):
    """Discriminator-side forward pass and loss.

    ``forward(x, generated)`` -> ``{'discriminator_gan': scalar}`` computed on real ``x['driving']`` and the
    detached ``generated['prediction']`` (both (B, 3, H, W) in [0, 1]) at every discriminator scale, weighted by
    ``train_params.loss_weights.discriminator_gan`` (``train_params`` as for :class:`GeneratorFullModel`).
    """

    def __init__(self, discriminator, train_params):
        super().__init__()
        self.discriminator = discriminator
        train_params = resolve_section('train_params', train_params)
        self.weight = train_params['loss_weights']['discriminator_gan']
        self.gan_mode = train_params['gan_mode']

    def forward(self, x, generated):
        b = x['driving'].shape[0]
        disc = self.discriminator(torch.cat([x['driving'], generated['prediction'].detach()]))
        total = 0.0
        for _, logits in disc.values():
            total = total + gan_loss(logits[:b], 'real', self.gan_mode) + gan_loss(logits[b:], 'fake', self.gan_mode)
        return {'discriminator_gan': self.weight * total}
