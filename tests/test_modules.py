"""Shapes, ranges and invariants of the Sparse2Dense networks and losses (modules/)."""
import copy
import os

import pytest
import torch
import yaml

from modules.build import build_networks, load_inference_models, weights_id
from modules.dense_motion import heatmap_difference, sparse_motions
from modules.model import (GeneratorFullModel, RandomTransform, VGG19Features, keypoint_guidance, keypoint_prior,
                           make_perceptual_backbone, region_weight_map, vertex_loss)
from modules.render import frames_to_tensor
from modules.util import ALIGN_CORNERS, make_coordinate_grid


@pytest.fixture(scope='module')
def sample_frames():
    """Callable size -> (8, 3, size, size) real frames of data/samples/head04.mp4 in [0, 1] (every 7th frame)."""
    import torch.nn.functional as F
    from video_io import read_frames
    frames, _ = read_frames(os.path.join(os.path.dirname(__file__), '..', 'data', 'samples', 'head04.mp4'),
                            range(0, 56, 7))
    video = frames_to_tensor(frames)
    return lambda size: F.interpolate(video, size=(size, size), mode='area')


@pytest.fixture(scope='module')
def tiny():
    with open('config/test-tiny.yaml') as f:
        config = yaml.safe_load(f)
    torch.manual_seed(0)
    return config, build_networks(config)


def test_all_configs_build():
    for name in ('test-tiny', 'humans256-cpu', 'ted384'):
        with open(f'config/{name}.yaml') as f:
            nets = build_networks(yaml.safe_load(f))
        assert set(nets) == {'kp_detector', 'generator', 'vertex_head', 'discriminator'}


@pytest.mark.parametrize('cpu_options', [True, False])
def test_shapes_and_ranges(tiny, sample_frames, cpu_options):
    config, nets = tiny
    if not cpu_options:  # the paper's generator (config/ted384.yaml): all texture passes the 3D volume, Eq. 6
        config = {**config, 'model_params': {**config['model_params'], 'generator_params': {
            **config['model_params']['generator_params'], 'warped_skips': False, 'blend_warped_source': False}}}
        nets = build_networks(config)
    frames = sample_frames(64)  # (T, 3, 64, 64) real frames in [0, 1]
    source, driving = frames[:2], frames[-2:]
    with torch.no_grad():
        kp_s, kp_d = nets['kp_detector'](source), nets['kp_detector'](driving)
        out = nets['generator'](source, kp_s, kp_d)
        vertices = nets['vertex_head'](out['F_refine'])
    k = config['model_params']['common_params']['num_kp']
    d = config['model_params']['generator_params']['reshape_depth']
    assert kp_s.shape == (2, k, 3)
    assert kp_s.abs().max() <= 1
    assert out['prediction'].shape == (2, 3, 64, 64)
    assert 0 <= out['prediction'].min() and out['prediction'].max() <= 1
    assert out['deformation'].shape == (2, d, 16, 16, 3)
    assert out['occlusion_map'].shape == (2, 1, 16, 16)
    assert 0 <= out['occlusion_map'].min() and out['occlusion_map'].max() <= 1
    torch.testing.assert_close(out['mask'].sum(1), torch.ones(2, d, 16, 16))
    assert vertices.shape == (2, config['model_params']['vertex_head_params']['num_vertices'], 2)
    assert ('blend_mask' in out) == cpu_options


def test_blend_with_identity_motion_returns_the_source_where_the_mask_is_one(tiny, sample_frames):
    _, nets = tiny
    gen = copy.deepcopy(nets['generator']).eval()
    frames = sample_frames(64)[:1]
    with torch.no_grad():
        kp = nets['kp_detector'].eval()(frames)
        features = gen.encode_source(frames)
        torch.nn.init.zeros_(gen.final.weight)
        gen.final.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 30.0]))  # mask logit 30: the warped source only
        out = gen.render(features, kp, kp)
    # equal keypoints: every sparse motion is the identity, so is their mask-weighted sum and the warped source
    torch.testing.assert_close(out['deformed'], frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(out['prediction'], frames, atol=1e-5, rtol=0)


def test_keypoint_heatmaps_start_from_the_parent_and_learn(repo_root, sample_frames):
    """generator_params.keypoint_heatmaps on the shipped checkpoint: the fine-tuned generator renders exactly the
    parent's frames before training, and the decoder's heatmap convolution gets a gradient from the frame loss."""
    from logger import load_matching_weights
    parent = load_inference_models(repo_root / 'checkpoints' / 'humans256-cpu.pth')
    config = copy.deepcopy(parent.config)
    config['model_params']['generator_params']['keypoint_heatmaps'] = True
    generator = build_networks(config)['generator'].eval()
    report = load_matching_weights(generator, parent.generator.state_dict())
    assert sorted(report['missing']) == ['keypoint_heatmaps.bias', 'keypoint_heatmaps.weight']
    frames = sample_frames(128)
    with torch.no_grad():
        kp = parent.kp_detector(frames)
        expected = parent.generator(frames[:1].expand(8, -1, -1, -1), kp[:1].expand(8, -1, -1), kp)['prediction']
    out = generator(frames[:1].expand(8, -1, -1, -1), kp[:1].expand(8, -1, -1), kp)
    torch.testing.assert_close(out['prediction'], expected)
    (out['prediction'] - frames).abs().mean().backward()
    assert generator.keypoint_heatmaps.weight.grad.abs().sum() > 0


def test_equal_keypoints_give_identity_motion():
    kp = torch.rand(2, 5, 3) * 2 - 1
    motion = sparse_motions(kp, kp.clone(), (4, 8, 8))
    grid = make_coordinate_grid((4, 8, 8))
    assert motion.shape == (2, 6, 4, 8, 8, 3)
    torch.testing.assert_close(motion, grid.expand_as(motion))
    assert heatmap_difference(kp, kp, (4, 8, 8), 0.01).abs().max() == 0
    # the identity grid samples a volume exactly (align_corners convention of the whole project)
    volume = torch.rand(1, 2, 4, 8, 8)
    warped = torch.nn.functional.grid_sample(volume, grid[None], align_corners=ALIGN_CORNERS)
    torch.testing.assert_close(warped, volume)


def test_keypoint_shift_moves_motion():
    src = torch.zeros(1, 1, 3)
    drv = torch.tensor([[[0.5, -0.25, 0.0]]])
    motion = sparse_motions(src, drv, (2, 4, 4))
    torch.testing.assert_close(motion[:, 1] - motion[:, 0], (src - drv).view(1, 1, 1, 1, 3).expand(1, 2, 4, 4, 3))


def test_render_equals_forward(tiny, sample_frames):
    _, nets = tiny
    frames = sample_frames(64)[:2]
    gen = nets['generator'].eval()
    with torch.no_grad():
        kp = nets['kp_detector'].eval()(frames)
        kp_d = kp.flip(0)
        a = gen(frames, kp, kp_d)['prediction']
        b = gen.render(gen.encode_source(frames), kp, kp_d)['prediction']
        # one key frame's features and keypoints broadcast to a batch of driving keypoints
        c = gen.render(gen.encode_source(frames[:1]), kp[:1], kp_d)['prediction']
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(c[0], gen(frames[:1], kp[:1], kp_d[:1])['prediction'][0])


def test_vertex_loss_ignores_unlabelled():
    pred = torch.zeros(1, 4, 2)
    target = torch.tensor([[[0.1, 0.1], [0.2, 0.2], [5.0, 5.0], [5.0, 5.0]]])
    conf = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert vertex_loss(pred, target, conf).item() == pytest.approx(0.15)
    assert vertex_loss(pred, target, torch.zeros(1, 4)).item() == 0


def test_keypoint_prior_penalises_collapse():
    spread = make_coordinate_grid((3, 3)).view(1, 9, 2)
    spread = torch.cat([spread, torch.full((1, 9, 1), 0.33)], -1)
    collapsed = torch.zeros(1, 9, 3)
    assert keypoint_prior(spread).item() == pytest.approx(0.0, abs=1e-6)
    assert keypoint_prior(collapsed).item() > 1


def test_equivariance_transform():
    frame = torch.rand(2, 3, 16, 16)
    identity = RandomTransform(2, 'cpu', sigma_affine=0, sigma_tps=0, points_tps=5)
    torch.testing.assert_close(identity.transform_frame(frame), frame)
    warp = RandomTransform(2, 'cpu', sigma_affine=0.1, sigma_tps=0.01, points_tps=5)
    coords = torch.rand(2, 7, 2) * 2 - 1
    assert (warp.warp_coordinates(coords) - coords).abs().max() > 1e-3


def test_losses_backward(tiny, sample_frames):
    config, nets = tiny
    frames = sample_frames(64)
    n = config['model_params']['vertex_head_params']['num_vertices']
    batch = {'source': frames[:2], 'driving': frames[2:4], 'vertices': torch.zeros(2, n, 2),
             'vertex_confidence': torch.ones(2, n)}
    model = GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'], nets['discriminator'],
                               config['train_params'])
    losses, generated = model(batch)
    assert set(losses) == set(config['train_params']['loss_weights']) - {'discriminator_gan'}
    sum(losses.values()).backward()
    for name in ('kp_detector', 'generator', 'vertex_head'):
        grads = [p.grad for p in nets[name].parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_vgg_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='vgg19-dcbb9e9d.pth'):
        make_perceptual_backbone('vgg19')
    feats = VGG19Features(pretrained=False)(torch.rand(1, 3, 32, 32))
    assert len(feats) == 5
    with pytest.raises(ValueError, match='perceptual_backbone'):
        make_perceptual_backbone('resnet')


def test_inference_checkpoint_round_trip(tiny, tmp_path):
    config, nets = tiny
    path = tmp_path / 'model.pth'
    torch.save({'config': config, 'epoch': 3, **{k: v.state_dict() for k, v in nets.items()}}, path)
    models = load_inference_models(str(path), 'cpu')
    assert models.epoch == 3 and models.weights_id == weights_id(nets, config) and len(models.weights_id) == 8
    assert not models.generator.training
    changed = {k: v.state_dict() for k, v in nets.items()}
    changed['vertex_head'] = {k: v + 1 for k, v in changed['vertex_head'].items()}
    assert weights_id(changed, config) != models.weights_id
    assert weights_id(nets) != models.weights_id  # the id covers the config too
    torch.save({'config': config}, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match='not a Sparse2Dense checkpoint'):
        load_inference_models(str(tmp_path / 'bad.pth'))
    with pytest.raises(FileNotFoundError):
        load_inference_models(str(tmp_path / 'missing.pth'))


def test_keypoint_guidance_ignores_unlabelled_and_pulls_keypoints_to_landmarks(tiny, sample_frames):
    config, _ = tiny
    kp_value = torch.rand(2, 3, 3) * 2 - 1
    landmarks = kp_value[..., :2].clone()
    confidence = torch.ones(2, 3)
    assert float(keypoint_guidance(kp_value, landmarks, confidence)) == 0
    landmarks[:, 0] += 0.5
    assert float(keypoint_guidance(kp_value, landmarks, confidence)) == pytest.approx(1 / 6)  # mean over x, y
    confidence[:, 0] = 0
    assert float(keypoint_guidance(kp_value, landmarks, confidence)) == 0

    # a detector trained on the guidance alone moves its keypoints onto the targets (real frames as input)
    torch.manual_seed(0)
    detector = build_networks(config)['kp_detector']
    frames = sample_frames(64)[:4]
    targets = torch.rand(4, detector.num_kp, 2) * 1.2 - 0.6
    weight = torch.ones(4, detector.num_kp)
    optimizer = torch.optim.Adam(detector.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = keypoint_guidance(detector(frames), targets, weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0], losses


def test_keypoint_guidance_needs_one_landmark_per_keypoint(tiny):
    config, nets = tiny
    params = copy.deepcopy(config['train_params'])
    params['keypoint_guidance_landmarks'] = [0, 1, 2]
    with pytest.raises(ValueError, match='one vertex-label index per keypoint'):
        GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'], nets['discriminator'],
                           params)


def test_region_weights_stress_the_teacher_face_box_on_a_real_clip(tiny, sample_frames):
    """The loss weights of train_params.region_weights on head04 labelled by the Holistic teacher: the face box is
    weighted up, the frame corners down, the mean stays 1; a box from a list of labels (the lips) is smaller and still
    covers the mouth; a missing face adds no box; the loss then counts an error on the mouth more than the same error
    in a corner; bad ranges are refused."""
    from tools.extract_vertices import FACE_SLICE, holistic_landmarks
    frames = sample_frames(128)[:2]
    labels, confidence = (torch.from_numpy(a) for a in holistic_landmarks(
        (frames.permute(0, 2, 3, 1) * 255).round().byte().numpy()))
    face = [FACE_SLICE.start, FACE_SLICE.stop]
    assert (confidence[:, FACE_SLICE] > 0).all()                       # the teacher found the face in both frames
    weights = region_weight_map(labels, confidence, [face], 9.0, 0.1, (128, 128))
    assert weights.shape == (2, 1, 128, 128)
    assert weights.mean((2, 3)).flatten().tolist() == pytest.approx([1.0, 1.0])
    mouth = ((labels[:, FACE_SLICE.start + 13] + 1) * 127 / 2).round().long()          # inner upper lip, (x, y) px
    for i in range(2):
        inside, corner = float(weights[i, 0, mouth[i, 1], mouth[i, 0]]), float(weights[i, 0, 0, 0])
        assert inside == pytest.approx(10 * corner) and corner < 1 < inside
    assert 0.02 < float((weights > 1).float().mean()) < 0.6              # a face box, not the frame
    assert torch.equal(region_weight_map(labels, confidence, [face], 0.0, 0.1, (128, 128)), torch.ones(2, 1, 128, 128))
    lips = [FACE_SLICE.start + i for i in (0, 17, 61, 291)]           # lip top, bottom and corners (index list)
    mouth_weights = region_weight_map(labels, confidence, [lips], 9.0, 0.25, (128, 128))
    for i in range(2):
        assert float(mouth_weights[i, 0, mouth[i, 1], mouth[i, 0]]) > 1 > float(mouth_weights[i, 0, 0, 0])
        assert float(mouth_weights[i, 0, 0, 0]) > float(weights[i, 0, 0, 0])   # a smaller box: the rest barely moves
    assert 0 < float((mouth_weights > 1).float().mean()) < 0.3 * float((weights > 1).float().mean())
    missing = confidence.clone()
    missing[1, FACE_SLICE] = 0
    assert torch.equal(region_weight_map(labels, missing, [face], 9.0, 0.1, (128, 128))[1], torch.ones(1, 128, 128))

    config, nets = tiny
    params = copy.deepcopy(config['train_params'])
    params['region_weights'] = {'weight': 9.0, 'ranges': [face], 'margin': 0.1}
    model = GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'], nets['discriminator'],
                               params)
    target = frames.clone()
    at_mouth, at_corner = target.clone(), target.clone()
    for i in range(2):
        at_mouth[i, :, mouth[i, 1] - 2:mouth[i, 1] + 2, mouth[i, 0] - 2:mouth[i, 0] + 2] += 0.5
        at_corner[i, :, :4, :4] += 0.5
    assert float(model.perceptual(at_mouth, target, weights)) > 3 * float(model.perceptual(at_corner, target, weights))
    assert float(model.perceptual(at_mouth, target)) == pytest.approx(float(model.perceptual(at_corner, target)),
                                                                      rel=0.1)
    for bad in ([[500, 600]], [[33, 50, 600]], [[1.5, 2]]):
        params['region_weights']['ranges'] = bad
        with pytest.raises(ValueError, match='region_weights needs'):
            GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'], nets['discriminator'],
                               params)
