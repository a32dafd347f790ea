"""The .s2d container (coding/bitstream.py): round trip, errors, and a seeded robustness fuzz."""
import dataclasses
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


SPLIT = 18                                 # the fixture's second key frame


@pytest.fixture(scope='module')
def stream():
    """A valid two-segment stream: real VVC key frames (head04 sample, 64x64 crops) + coded keypoints of a smooth
    track, the keypoint coder restarted at the second key frame."""
    frames, fps = read_frames(REPO / 'data' / 'samples' / 'head04.mp4', range(SPLIT + 1))
    keys = [vvc.encode_intra(frames[i, 96:160, 96:160], 42) for i in (0, SPLIT)]
    rng = np.random.default_rng(0)
    q = kc.quantize(np.clip(np.cumsum(rng.laplace(scale=0.01, size=(T, K, 3)), axis=0), -1, 1), 0.01)
    segments = []
    for key, (start, end) in zip(keys, ((0, SPLIT), (SPLIT, T))):
        enc = kc.KeypointEncoder(K, 0.01)
        for frame in q[start:end]:
            enc.encode_frame(frame)
        segments.append(bs.Segment(start, end - start, key.qp, key.bitstream, enc.finish()))
    s = bs.S2DStream(width=64, height=64, fps=Fraction(fps), num_kp=K, kp_step=0.01, key_codec=keys[0].backend,
                     kp_coder='ctx36', weights_id=b'\x01\x02\x03\x04\x05\x06\x07\x08', segments=segments)
    return s, q


def decode_all(data):
    """Parse + entropy-decode every keypoint frame of every segment; returns the quantized keypoints."""
    s = bs.parse(data)
    q = []
    for segment in s.segments:
        dec = kc.KeypointDecoder(segment.keypoints, s.num_kp, s.kp_step)
        q += [dec.decode_frame() for _ in range(segment.frame_count)]
        dec.finish()
    return np.stack(q)


def pack_v1(s):
    """A version-1 file (one key frame, no index) as the previous release wrote it (coding/bitstream.py docstring)."""
    (segment,) = s.segments
    codec = s.key_codec.encode()
    header = (struct.pack('<HHIIIHdB', s.width, s.height, s.fps.numerator, s.fps.denominator, segment.frame_count,
                          s.num_kp, s.kp_step, segment.qp) + bytes([len(codec)]) + codec + s.weights_id)
    return bs.MAGIC + b'\x01' + b''.join(bs._section(p) for p in (header, segment.key_frame, segment.keypoints))


def test_round_trip_and_bit_account(stream):
    s, q = stream
    data = bs.pack(s)
    bits = s.section_bits()
    assert bits['header'] + bits['index'] + sum(bits['key_frames']) + sum(bits['keypoints']) == 8 * len(data)
    parsed = bs.parse(data)
    assert parsed == s and parsed.fps == Fraction(30) and parsed.key_codec == 'vvenc' and parsed.frame_count == T
    np.testing.assert_array_equal(decode_all(data), q)
    assert [s.segment_at(f) for f in (0, SPLIT - 1, SPLIT, T - 1)] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match='outside the clip'):
        s.segment_at(T)


def test_version_1_files_are_still_read(stream):
    s, q = stream
    one = bs.S2DStream(**{**s.__dict__, 'segments': [bs.Segment(0, SPLIT, s.segments[0].qp,
                                                                 s.segments[0].key_frame, s.segments[0].keypoints)]})
    with bs.S2DFile(pack_v1(one)) as handle:
        assert handle.version == 1 and handle.load() == one
    np.testing.assert_array_equal(decode_all(pack_v1(one)), q[:SPLIT])
    with pytest.raises(bs.BitstreamError, match='unexpected bytes after segment 0'):
        bs.parse(pack_v1(one) + b'\x00')


def test_predicted_key_frames_are_version_3(stream):
    """A stream with a predicted key frame is written as version 3 (a flags byte per index entry) and reads back
    with the flag; without one it stays version 2, byte for byte; impossible chains are refused."""
    s, q = stream
    v2 = bs.pack(s)
    assert v2[4] == 2 and s.version == 2
    chained = bs.S2DStream(**{**s.__dict__, 'segments': [s.segments[0],
                                                         dataclasses.replace(s.segments[1], predicted=True)]})
    data = bs.pack(chained)
    assert data[4] == 3 and len(data) == len(v2) + len(s.segments)
    parsed = bs.parse(data)
    assert parsed == chained and [seg.predicted for seg in parsed.segments] == [False, True]
    assert [parsed.chain_start(i) for i in (0, 1)] == [0, 0] and s.chain_start(1) == 1
    np.testing.assert_array_equal(decode_all(data), q)
    first = bs.S2DStream(**{**s.__dict__, 'segments': [dataclasses.replace(s.segments[0], predicted=True),
                                                       s.segments[1]]})
    with pytest.raises(bs.BitstreamError, match='nothing comes before it'):
        bs.pack(first)
    index_offset, _ = bs.FOOTER.unpack(data[-bs.FOOTER.size:])
    flags_at = 4 + bs._INDEX_ENTRY[3].size + 9           # the second entry's flags byte
    for flags, message in ((0x03, 'unknown segment flags 0x3'), (0x00, 'version 3 without a predicted')):
        payload = bytearray(data[index_offset + 4:-bs.FOOTER.size - 4])
        payload[flags_at] = flags
        with pytest.raises(bs.BitstreamError, match=message):
            bs.parse(data[:index_offset] + bs._section(bytes(payload)) + data[-bs.FOOTER.size:])
    long = [bs.Segment(i, 1, 42, b'k', b'', predicted=i > 0) for i in range(bs.MAX_CHAIN + 1)]
    with pytest.raises(bs.BitstreamError, match=f'more than {bs.MAX_CHAIN} key frames in one prediction chain'):
        bs.pack(bs.S2DStream(**{**s.__dict__, 'segments': long}))


def test_seek_reads_only_the_wanted_segment(stream, tmp_path):
    """With the first segment's payload destroyed, the index still opens the file and the second segment reads."""
    s, _ = stream
    data = bytearray(bs.pack(s))
    first_key = bs.PREAMBLE + bs.SECTION_OVERHEAD + len(s.header_bytes()) + 4
    data[first_key + 5] ^= 0xFF
    path = tmp_path / 'damaged.s2d'
    path.write_bytes(bytes(data))
    with bs.S2DFile(path) as handle:
        assert [seg.start_frame for seg in handle.stream.segments] == [0, SPLIT]
        assert handle.segment(1) == s.segments[1]
        with pytest.raises(bs.BitstreamError, match='CRC mismatch in the key frame section'):
            handle.segment(0)


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
    with pytest.raises(bs.BitstreamError, match='index footer'):
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
    gap = bs.S2DStream(**{**s.__dict__, 'segments': [s.segments[0], bs.Segment(SPLIT + 1, 3, 42, b'k', b'')]})
    with pytest.raises(bs.BitstreamError, match='must be non-empty and follow each other'):
        bs.pack(gap)


def test_inconsistent_index_is_refused(stream):
    """An index whose offsets or frame ranges do not match the file (CRC recomputed) is refused on open."""
    s, _ = stream
    data = bs.pack(s)
    index_offset, _ = bs.FOOTER.unpack(data[-bs.FOOTER.size:])
    payload = bytearray(data[index_offset + 4:-bs.FOOTER.size - 4])
    for field, value, message in ((13, 1, 'offsets do not follow'),         # first segment's offset
                                  (4 + bs._INDEX_ENTRY[s.version].size, SPLIT + 2, 'follow each other')):  # second segment's start frame
        forged = bytearray(payload)
        struct.pack_into('<I', forged, field, value)
        rebuilt = data[:index_offset] + bs._section(bytes(forged)) + data[-bs.FOOTER.size:]
        with pytest.raises(bs.BitstreamError, match=message):
            bs.parse(rebuilt)


def boundaries(s):
    points = [0, 4, bs.PREAMBLE]
    pos = bs.PREAMBLE + bs.SECTION_OVERHEAD + len(s.header_bytes())
    points.append(pos)
    for segment in s.segments:
        pos += bs.SECTION_OVERHEAD + len(segment.key_frame)
        points.append(pos)
        pos += bs.SECTION_OVERHEAD + len(segment.keypoints)
        points.append(pos)
    points += [pos + bs.SECTION_OVERHEAD + 4 + bs._INDEX_ENTRY[s.version].size * len(s.segments)]
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
        payload = bytearray(s.segments[1].keypoints)
        if case % 2:
            payload = bytearray(rng.integers(0, 256, 4 * int(rng.integers(0, 40)), dtype=np.uint8))
        else:
            for pos in rng.integers(0, len(payload), 3):
                payload[pos] ^= 1 << int(rng.integers(0, 8))
        segment = bs.Segment(**{**s.segments[1].__dict__, 'keypoints': bytes(payload)})
        forged = bs.S2DStream(**{**s.__dict__, 'segments': [s.segments[0], segment]})
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
