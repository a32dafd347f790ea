"""The .s2d container (coding/bitstream.py): round trip, errors, and a seeded robustness fuzz."""
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from coding import bitstream as bs
from coding import keypoint_coder as kc
from coding import vvc
from video_io import read_frames

REPO = Path(__file__).resolve().parents[1]
K, T = 15, 30


@pytest.fixture(scope='module')
def stream():
    """A valid stream: real VVC key frame (head04 sample, 64x64 crop) + coded keypoints of a smooth track."""
    frames, fps = read_frames(REPO / 'data' / 'samples' / 'head04.mp4', range(1))
    key = vvc.encode_intra(frames[0, 96:160, 96:160], 42)
    rng = np.random.default_rng(0)
    q = kc.quantize(np.clip(np.cumsum(rng.laplace(scale=0.01, size=(T, K, 3)), axis=0), -1, 1), 0.01)
    enc = kc.KeypointEncoder(K, 0.01)
    for frame in q:
        enc.encode_frame(frame)
    s = bs.S2DStream(width=64, height=64, fps=Fraction(fps), frame_count=T, num_kp=K, kp_step=0.01,
                     key_codec=key.backend, qp=key.qp, weights_id=b'\x01\x02\x03\x04\x05\x06\x07\x08',
                     key_frame=key.bitstream, keypoints=enc.finish())
    return s, q


def decode_all(data):
    """Parse + entropy-decode every keypoint frame; returns the quantized keypoints."""
    s = bs.parse(data)
    dec = kc.KeypointDecoder(s.keypoints, s.num_kp, s.kp_step)
    q = np.stack([dec.decode_frame() for _ in range(s.frame_count)])
    dec.finish()
    return q


def test_round_trip_and_bit_account(stream):
    s, q = stream
    data = bs.pack(s)
    assert sum(s.section_bits().values()) == 8 * len(data)
    parsed = bs.parse(data)
    assert parsed == s and parsed.fps == Fraction(30) and parsed.key_codec == 'vvenc'
    np.testing.assert_array_equal(decode_all(data), q)


def test_atomic_write(stream, tmp_path):
    path = tmp_path / 'out' / 'clip.s2d'
    bs.write_atomic(path, bs.pack(stream[0]))
    assert bs.read(path) == stream[0]
    assert [p.name for p in path.parent.iterdir()] == ['clip.s2d']  # no temporary left behind


def test_clear_errors(stream):
    s, _ = stream
    data = bs.pack(s)
    with pytest.raises(bs.BitstreamError, match='not a Sparse2Dense .s2d bitstream'):
        bs.parse(b'RIFF' + data[4:])
    with pytest.raises(bs.BitstreamError, match='version 7 is not supported'):
        bs.parse(data[:4] + b'\x07' + data[5:])
    with pytest.raises(bs.BitstreamError, match='truncated'):
        bs.parse(data[:-1])
    with pytest.raises(bs.BitstreamError, match='CRC mismatch in the key frame section'):
        pos = bs.PREAMBLE + bs.SECTION_OVERHEAD + len(s.header_bytes()) + 4 + 10
        bs.parse(data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1:])
    with pytest.raises(bs.BitstreamError, match='unexpected bytes after the last section'):
        bs.parse(data + b'\x00')
    with pytest.raises(bs.BitstreamError, match='made with model weights 0102030405060708'):
        bs.check_weights(s, b'\x00' * 8)
    bs.check_weights(s, s.weights_id)
    huge = data[:5] + struct.pack('<I', 0xFFFFFFF0) + data[9:]
    with pytest.raises(bs.BitstreamError, match='claims 4294967280 bytes'):
        bs.parse(huge)
    bad = bs.S2DStream(**{**s.__dict__, 'key_codec': 'x265', 'width': 70000})
    with pytest.raises(bs.BitstreamError, match=r"frame size 70000x64.*codec 'x265'"):
        bs.pack(bad)


def boundaries(s):
    header = bs.PREAMBLE + bs.SECTION_OVERHEAD + len(s.header_bytes())
    key = header + bs.SECTION_OVERHEAD + len(s.key_frame)
    points = [0, 4, bs.PREAMBLE, header, key, key + bs.SECTION_OVERHEAD + len(s.keypoints)]
    return sorted({p + d for p in points for d in (-4, -1, 0, 1, 4)})


def test_fuzz_truncation(stream):
    s, _ = stream
    data = bs.pack(s)
    rng = np.random.default_rng(1)
    cuts = [c for c in boundaries(s) if 0 <= c < len(data)] + list(rng.integers(0, len(data), 100))
    for cut in cuts:
        with pytest.raises(bs.BitstreamError):
            decode_all(data[:cut])


def test_fuzz_bit_flips(stream):
    s, q = stream
    data = bytearray(bs.pack(s))
    rng = np.random.default_rng(2)
    header_end = bs.PREAMBLE + bs.SECTION_OVERHEAD + len(s.header_bytes())
    for case in range(300):
        corrupt = bytearray(data)
        # half the cases hit the preamble/header, the rest anywhere; 1 to 3 flipped bits
        region = header_end if case % 2 == 0 else len(data)
        for pos in rng.integers(0, region, int(rng.integers(1, 4))):
            corrupt[pos] ^= 1 << int(rng.integers(0, 8))
        if corrupt == data:
            continue
        with pytest.raises(bs.BitstreamError):  # CRC-32 detects every 1-3 bit error
            decode_all(bytes(corrupt))


def test_fuzz_payloads_behind_valid_crcs(stream):
    """Where a CRC cannot help (payload replaced, CRC recomputed): BitstreamError or a valid decode."""
    s, _ = stream
    rng = np.random.default_rng(3)
    outcomes = set()
    for case in range(200):
        payload = bytearray(s.keypoints)
        if case % 2:
            payload = bytearray(rng.integers(0, 256, 4 * int(rng.integers(0, 40)), dtype=np.uint8))
        else:
            for pos in rng.integers(0, len(payload), 3):
                payload[pos] ^= 1 << int(rng.integers(0, 8))
        forged = bs.S2DStream(**{**s.__dict__, 'keypoints': bytes(payload)})
        try:
            q = decode_all(bs.pack(forged))
            assert q.shape == (T, K, 3) and np.abs(q).max() <= kc.MAX_ABS_Q
            outcomes.add('decoded')
        except bs.BitstreamError:
            outcomes.add('error')
    assert 'error' in outcomes


def test_crc_is_zlib_crc32(stream):
    s, _ = stream
    data = bs.pack(s)
    header = s.header_bytes()
    assert data[bs.PREAMBLE + 4 + len(header):bs.PREAMBLE + 8 + len(header)] == \
        struct.pack('<I', zlib.crc32(header))
