"""Fuzz the library decoder (coding.codec.Decoder) with mutated ``.s2d`` bitstreams; print an outcome table.

    python -m benchmarks.fuzz_decoder [--cases 10000] [--seed 0] [--checkpoint CKPT] [--memory-limit-mb 2048]
        [--case-timeout 10] [--json report.json]

Seeds: a few real clips' frames (data/samples/head04.mp4) coded with a tiny random-weight model (config/test-tiny.yaml,
built here unless ``--checkpoint`` is given) at several lengths and QPs. Each case takes one seed and applies one
mutation (seeded: the same ``--seed`` gives the same cases):

- raw: bit flips, byte overwrites, truncation, insertion, appended bytes (CRC checks catch most of them);
- header (CRC recomputed): one header field set to an extreme or random value (size, fps, K, kp_step including
  NaN / inf, key-frame codec and keypoint coder names, weights id, name lengths), or a version-1 file with one of
  its header fields (frame count and QP included) set so;
- index (CRC recomputed): a segment's start frame, frame count, QP, flags (version 3: predicted key frame) or offset
  set to an extreme, a segment dropped or duplicated, offsets swapped, the footer's index offset changed;
- key frame (CRC recomputed), of one segment: payload bytes flipped, truncated, doubled (several pictures),
  replaced by a VVC bitstream of other pictures (larger, smaller, several), or by garbage;
- keypoints (CRC recomputed), of one segment: payload words flipped, truncated, extended, replaced by random words,
  or re-coded with keypoints outside [-1, 1];
- combined: a large frame count with a truncated keypoint section (last segment).

Three of the five seeds hold several key frames (refresh threshold 0 dB): two with predicted key frames (version 3,
prediction chains), one all intra (version 2).

Every case parses and fully decodes (every frame rendered) inside the same process, with ``RLIMIT_AS`` set to the
current virtual size + ``--memory-limit-mb`` (inherited by the ffmpeg child processes) and a per-case alarm.
An outcome is *clean* when decoding succeeds or ends in ``BitstreamError`` or ``VVCError`` (the documented errors);
anything else (another exception, a timeout, MemoryError) is *bad*. The table gives the counts per mutation kind,
the slowest case, and the peak RSS of this process and of the ffmpeg children. Exit code 1 if any case is bad.
"""
import argparse
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from coding import bitstream, keypoint_coder, vvc  # noqa: E402
from coding.codec import Decoder, Encoder  # noqa: E402

KINDS = ('raw', 'header', 'index', 'key_frame', 'keypoints', 'combined')


class CaseTimeout(Exception):
    """A case ran past --case-timeout."""


def tiny_checkpoint(path, seed=0):
    """A random-weight config/test-tiny.yaml checkpoint at ``path`` (same format as modules/build.py reads)."""
    from modules.build import build_networks
    with open(os.path.join(REPO, 'config', 'test-tiny.yaml')) as handle:
        config = yaml.safe_load(handle)
    torch.manual_seed(seed)
    nets = build_networks(config)
    torch.save({'config': config, 'epoch': 0, **{k: v.state_dict() for k, v in nets.items()}}, path)
    return path


def section(payload):
    return struct.pack('<I', len(payload)) + payload + struct.pack('<I', zlib.crc32(payload))


def assemble(header, segments, entries=None, version=bitstream.VERSION):
    """A .s2d file from raw payloads, CRCs recomputed, nothing validated (to reach past the CRC checks).

    Args: header: header payload; segments: list of (key frame payload, keypoint payload); entries: index entries
        (start_frame, frame_count, qp, flags, offset or None = the true offset), one per segment or any other number;
        version: 3 or 2 (with index and footer; version 2 entries have no flags byte) or 1 (exactly one segment,
        no index).
    """
    out = bytearray(bitstream.MAGIC + bytes([version]) + section(header))
    offsets = []
    for key_frame, keypoints in segments:
        offsets.append(len(out))
        out += section(key_frame) + section(keypoints)
    if version == 1:
        return bytes(out)
    index_offset = len(out)
    rows = [(start, count, qp) + ((flags,) if version == 3 else ())
            + (offsets[i] if offset is None and i < len(offsets) else (offset or 0),)
            for i, (start, count, qp, flags, offset) in enumerate(entries)]
    layout = '<IIBBQ' if version == 3 else '<IIBQ'
    index = struct.pack('<I', len(rows)) + b''.join(struct.pack(layout, *row) for row in rows)
    return bytes(out + section(index) + struct.pack('<Q', index_offset) + bitstream.FOOTER_MAGIC)


HEADER_FIELDS = ('width', 'height', 'fps_num', 'fps_den', 'num_kp', 'kp_step')
FIELD_FORMATS = dict(zip(HEADER_FIELDS, 'HHIIHd'))
V1_FIELDS = ('width', 'height', 'fps_num', 'fps_den', 'frame_count', 'num_kp', 'kp_step', 'qp')
INDEX_FIELDS = ('start_frame', 'frame_count', 'qp', 'flags', 'offset')
EXTREMES = {'H': [0, 1, 2, 63, 65, 4096, 16384, 16385, 65535], 'I': [0, 1, 2, 1000, 1001, 10 ** 5, 10 ** 7,
                                                                      10 ** 7 + 1, 2 ** 31, 2 ** 32 - 1],
            'B': [0, 1, 63, 64, 255], 'Q': [0, 1, 5, 40, 2 ** 31, 2 ** 63],
            'd': [0.0, -0.01, 1e-7, 1e-6, 1e-3, 0.01, 0.5, 1.0, 2.0, float('nan'), float('inf'), -float('inf')]}
INDEX_FORMATS = dict(zip(INDEX_FIELDS, 'IIBBQ'))


class Mutator:
    """Seeded mutations of seed streams (see module docstring)."""

    def __init__(self, seeds, foreign_key_frames, rng):
        self.seeds = seeds                    # list of (bytes, S2DStream)
        self.foreign = foreign_key_frames     # list of VVC bitstreams of other pictures
        self.rng = rng

    def extreme(self, fmt):
        if self.rng.random() < 0.7:
            return self.rng.choice(EXTREMES[fmt])
        if fmt == 'd':
            return self.rng.uniform(-2, 2)
        return self.rng.randrange(1 << (8 * struct.calcsize(fmt)))

    def header_payload(self, stream, **override):
        fields = {'width': stream.width, 'height': stream.height, 'fps_num': stream.fps.numerator,
                  'fps_den': stream.fps.denominator, 'num_kp': stream.num_kp, 'kp_step': stream.kp_step}
        fields.update(override)
        codec = override.get('codec', stream.key_codec.encode())
        coder = override.get('coder', stream.kp_coder.encode())
        weights = override.get('weights_id', stream.weights_id)
        return (struct.pack('<HHIIHd', *(fields[name] for name in HEADER_FIELDS)) + bytes([len(codec) & 255])
                + codec + bytes([len(coder) & 255]) + coder + weights)

    @staticmethod
    def entries(stream):
        return [[s.start_frame, s.frame_count, s.qp, int(s.predicted), None] for s in stream.segments]

    @staticmethod
    def payloads(stream):
        return [[s.key_frame, s.keypoints] for s in stream.segments]

    def build(self, stream, header=None, payloads=None, entries=None):
        return assemble(header if header is not None else self.header_payload(stream),
                        payloads if payloads is not None else self.payloads(stream),
                        entries if entries is not None else self.entries(stream), version=stream.version)

    def raw(self, data):
        data = bytearray(data)
        op = self.rng.choice(['flip', 'overwrite', 'truncate', 'insert', 'append', 'flips'])
        if op == 'flip':
            i = self.rng.randrange(len(data))
            data[i] ^= 1 << self.rng.randrange(8)
        elif op == 'flips':
            for _ in range(self.rng.randint(2, 20)):
                i = self.rng.randrange(len(data))
                data[i] ^= 1 << self.rng.randrange(8)
        elif op == 'overwrite':
            i = self.rng.randrange(len(data))
            data[i:i + 4] = bytes(self.rng.randrange(256) for _ in range(4))
        elif op == 'truncate':
            del data[self.rng.randrange(len(data)):]
        elif op == 'insert':
            i = self.rng.randrange(len(data))
            data[i:i] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16)))
        else:
            data += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64)))
        return bytes(data), f'raw:{op}'

    def header(self, stream):
        choice = self.rng.choice(HEADER_FIELDS + ('codec', 'coder', 'weights_id', 'layout', 'version1'))
        if choice in ('codec', 'coder'):
            names = sorted(name.encode() for name in (vvc.BACKENDS if choice == 'codec' else keypoint_coder.CODERS))
            name = self.rng.choice(names + [b'', b'hevc', b'\xff\xfe', b'v' * 255])
            return self.build(stream, header=self.header_payload(stream, **{choice: name})), f'header:{choice}'
        if choice == 'weights_id':
            weights = bytes(self.rng.randrange(256) for _ in range(8))
            return self.build(stream, header=self.header_payload(stream, weights_id=weights)), 'header:weights_id'
        if choice == 'layout':
            payload = bytearray(self.header_payload(stream))
            if self.rng.random() < 0.5:
                del payload[self.rng.randrange(len(payload)):]
            else:
                payload[struct.calcsize('<HHIIHd') + self.rng.choice([0, 1 + len(stream.key_codec)])] = \
                    self.rng.randrange(256)                                          # a name's length byte
            return self.build(stream, header=bytes(payload)), 'header:layout'
        if choice == 'version1':
            return self.version1(stream), 'header:version1'
        value = self.extreme(FIELD_FORMATS[choice])
        return self.build(stream, header=self.header_payload(stream, **{choice: value})), f'header:{choice}'

    def version1(self, stream):
        """A version-1 file of the stream's first segment, one v1 header field possibly set to an extreme."""
        first = stream.segments[0]
        fields = {'width': stream.width, 'height': stream.height, 'fps_num': stream.fps.numerator,
                  'fps_den': stream.fps.denominator, 'frame_count': first.frame_count, 'num_kp': stream.num_kp,
                  'kp_step': stream.kp_step, 'qp': first.qp}
        field = self.rng.choice(V1_FIELDS + ('none',))
        if field != 'none':
            fields[field] = self.extreme(dict(zip(V1_FIELDS, 'HHIIIHdB'))[field])
        codec = stream.key_codec.encode()
        header = (struct.pack('<HHIIIHdB', *(fields[name] for name in V1_FIELDS)) + bytes([len(codec)]) + codec
                  + stream.weights_id)
        return assemble(header, [(first.key_frame, first.keypoints)], version=1)

    def index(self, stream):
        entries = self.entries(stream)
        op = self.rng.choice(['field', 'field', 'drop', 'duplicate', 'swap', 'footer'])
        if op == 'field':
            fields = [i for i, name in enumerate(INDEX_FIELDS) if name != 'flags' or stream.version == 3]
            entry, field = self.rng.randrange(len(entries)), self.rng.choice(fields)
            entries[entry][field] = self.extreme(INDEX_FORMATS[INDEX_FIELDS[field]])
            op = INDEX_FIELDS[field]
        elif op == 'drop':
            del entries[self.rng.randrange(len(entries))]
        elif op == 'duplicate':
            entries.insert(self.rng.randrange(len(entries) + 1), list(self.rng.choice(entries)))
        elif op == 'swap' and len(entries) > 1:
            i = self.rng.randrange(len(entries) - 1)
            entries[i][4], entries[i + 1][4] = self.extreme('Q'), entries[i][4]
        else:
            data = bytearray(self.build(stream))
            struct.pack_into('<Q', data, len(data) - bitstream.FOOTER.size, self.extreme('Q'))
            return bytes(data), 'index:footer'
        return self.build(stream, entries=entries), f'index:{op}'

    def key_frame(self, stream):
        payloads = self.payloads(stream)
        target = self.rng.randrange(len(payloads))
        key = bytearray(payloads[target][0])
        op = self.rng.choice(['flip', 'truncate', 'double', 'foreign', 'garbage', 'empty'])
        if op == 'flip':
            for _ in range(self.rng.randint(1, 8)):
                i = self.rng.randrange(len(key))
                key[i] ^= 1 << self.rng.randrange(8)
        elif op == 'truncate':
            del key[self.rng.randrange(len(key)):]
        elif op == 'double':
            key = key * self.rng.randint(2, 10)
        elif op == 'foreign':
            key = bytearray(self.rng.choice(self.foreign) * self.rng.randint(1, 3))
        elif op == 'garbage':
            key = bytearray(b'\x00\x00\x01' + bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 300))))
        else:
            key = bytearray()
        payloads[target][0] = bytes(key)
        return self.build(stream, payloads=payloads), f'key_frame:{op}'

    def keypoints(self, stream):
        payloads, entries = self.payloads(stream), self.entries(stream)
        target = self.rng.randrange(len(payloads))
        words = bytearray(payloads[target][1])
        op = self.rng.choice(['flip', 'truncate', 'extend', 'random', 'outside', 'unaligned'])
        if op == 'flip' and words:
            for _ in range(self.rng.randint(1, 6)):
                i = self.rng.randrange(len(words))
                words[i] ^= 1 << self.rng.randrange(8)
        elif op == 'truncate':
            del words[4 * self.rng.randrange(max(1, len(words) // 4)):]
        elif op == 'extend':
            words += bytes(self.rng.randrange(256) for _ in range(4 * self.rng.randint(1, 16)))
        elif op == 'random':
            words = bytearray(self.rng.randrange(256) for _ in range(4 * self.rng.randint(0, 64)))
        elif op == 'outside':                     # the last segment re-coded with keypoints outside [-1, 1]
            target = len(payloads) - 1
            coder = keypoint_coder.KeypointEncoder(stream.num_kp, stream.kp_step)
            count = self.rng.randint(1, 4)
            for _ in range(count):
                q = np.zeros((stream.num_kp, 3), np.int64)
                q[self.rng.randrange(stream.num_kp), self.rng.randrange(3)] = int(
                    self.rng.choice([-1, 1]) * self.rng.choice([1.5, 42.0, 1e4]) / stream.kp_step)
                coder.encode_frame(q)
            words = bytearray(coder.finish())
            entries[target][1] = count
        else:
            words += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 3)))
        payloads[target][1] = bytes(words)
        return self.build(stream, payloads=payloads, entries=entries), f'keypoints:{op}'

    def combined(self, stream):
        payloads, entries = self.payloads(stream), self.entries(stream)
        target = len(payloads) - 1
        keypoints = payloads[target][1]
        payloads[target][1] = keypoints[:4 * self.rng.randint(0, max(0, len(keypoints) // 4))]
        entries[target][1] = self.rng.choice([entries[target][1] + 1, 1000, 10 ** 5, 10 ** 7])
        return self.build(stream, payloads=payloads, entries=entries), 'combined:frames+truncated'

    def case(self, index):
        data, stream = self.seeds[index % len(self.seeds)]
        kind = KINDS[index % len(KINDS)]
        if kind == 'raw':
            return self.raw(data)
        return getattr(self, kind)(stream)


def decode_all(decoder, data):
    """Parse and fully decode (every frame rendered). Returns the frame count."""
    count = 0
    for frame, vertices in decoder.decode(data):
        assert frame.shape == decoder.size + (3,) and np.all(np.isfinite(vertices))
        count += 1
    return count


def build_seeds(checkpoint, rng):
    from tools.crop import CropBox, apply_crop
    from video_io import read_frames
    clip, _ = read_frames(os.path.join(REPO, 'data', 'samples', 'head04.mp4'), range(12))
    frames = np.stack([apply_crop(f, CropBox(0, 0, 256), 64) for f in clip])
    seeds = []
    for length, qp, threshold, inter in ((1, 50, None, True), (3, 42, None, True), (6, 37, 0.0, True),
                                         (12, 45, 0.0, True), (12, 45, 0.0, False)):
        data = Encoder(checkpoint, qp=qp, refresh_threshold=threshold, inter_key_frames=inter).encode(
            frames[:length], fps=30)
        seeds.append((data, bitstream.parse(data)))
    versions = {stream.version for _, stream in seeds if len(stream.segments) > 1}
    assert versions == {2, 3}, f'multi-key-frame seeds of versions {versions}, expected intra (2) and predicted (3)'
    foreign = [vvc.encode_intra(np.zeros((256, 256, 3), np.uint8), 63).bitstream,
               vvc.encode_intra(np.zeros((512, 512, 3), np.uint8), 63).bitstream,
               vvc.encode_sequence(frames[:4, :32, :32], 63, 30).bitstream,
               vvc.encode_intra(frames[0, :32, :64], 50).bitstream]
    return seeds, foreign


def set_memory_limit(limit_mb):
    """RLIMIT_AS = the current virtual size + limit_mb (children inherit it). Returns the limit in bytes."""
    with open('/proc/self/status') as handle:
        vm_size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith('VmSize:'))
    limit = vm_size + limit_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return limit


def run(cases, seed, checkpoint=None, memory_limit_mb=2048, case_timeout=10.0, progress=True):
    """Run the fuzzer; returns the report dict (see main for the printed table)."""
    torch.set_num_threads(1)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix='s2d_fuzz_') as tmp:
        checkpoint = checkpoint or tiny_checkpoint(os.path.join(tmp, 'tiny.pth'))
        decoder = Decoder(checkpoint)
        seeds, foreign = build_seeds(checkpoint, rng)
    mutator = Mutator(seeds, foreign, rng)
    for data, _ in seeds:                                           # the seeds themselves decode
        decode_all(decoder, data)
    limit = set_memory_limit(memory_limit_mb) if memory_limit_mb else None

    def alarm(*_):
        raise CaseTimeout()
    signal.signal(signal.SIGALRM, alarm)
    outcomes = defaultdict(Counter)
    bad_cases = []
    max_time, slowest = 0.0, None
    start_all = time.monotonic()
    for index in range(cases):
        data, label = mutator.case(index)
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, case_timeout)
        try:
            decode_all(decoder, data)
            outcome = 'decoded'
        except bitstream.BitstreamError:
            outcome = 'BitstreamError'
        except vvc.VVCError:
            outcome = 'VVCError'
        except CaseTimeout:
            outcome = 'BAD:timeout'
        except MemoryError:
            outcome = 'BAD:MemoryError'
        except Exception as err:  # anything else is a finding
            outcome = f'BAD:{type(err).__name__}'
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.monotonic() - start
        if elapsed > max_time:
            max_time, slowest = elapsed, label
        outcomes[label.split(':')[0]][outcome] += 1
        if outcome.startswith('BAD'):
            bad_cases.append({'case': index, 'mutation': label, 'outcome': outcome, 'seconds': elapsed})
        if progress and (index + 1) % 500 == 0:
            print(f'  {index + 1}/{cases} cases, {len(bad_cases)} bad, {time.monotonic() - start_all:.0f} s',
                  file=sys.stderr)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    clean = sum(n for kind in outcomes.values() for o, n in kind.items() if not o.startswith('BAD'))
    return {'cases': cases, 'seed': seed, 'clean': clean, 'bad': len(bad_cases), 'bad_cases': bad_cases[:50],
            'outcomes': {k: dict(v) for k, v in outcomes.items()}, 'max_case_seconds': max_time,
            'slowest_mutation': slowest, 'peak_rss_bytes': self_peak, 'peak_child_rss_bytes': child_peak,
            'memory_limit_bytes': limit, 'total_seconds': time.monotonic() - start_all}


def format_report(report):
    lines = [f"fuzz_decoder: {report['cases']} cases (seed {report['seed']}) in {report['total_seconds']:.0f} s",
             f"{'mutation':<11}{'decoded':>9}{'Bitstream':>11}{'VVCError':>10}{'bad':>6}"]
    for kind in KINDS:
        counts = report['outcomes'].get(kind, {})
        bad = sum(n for o, n in counts.items() if o.startswith('BAD'))
        lines.append(f"{kind:<11}{counts.get('decoded', 0):>9}{counts.get('BitstreamError', 0):>11}"
                     f"{counts.get('VVCError', 0):>10}{bad:>6}")
    lines += [f"clean errors / decoded: {report['clean']}   bad outcomes: {report['bad']}",
              f"max time per case: {report['max_case_seconds']:.2f} s ({report['slowest_mutation']})",
              f"max RSS: {report['peak_rss_bytes'] / 2 ** 20:.0f} MiB (this process), "
              f"{report['peak_child_rss_bytes'] / 2 ** 20:.0f} MiB (ffmpeg children)"
              + (f"; address-space limit {report['memory_limit_bytes'] / 2 ** 30:.1f} GiB"
                 if report['memory_limit_bytes'] else '')]
    for case in report['bad_cases'][:10]:
        lines.append(f"  BAD case {case['case']}: {case['mutation']} -> {case['outcome']}")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', type=int, default=10000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--checkpoint', default=None, help='default: a tiny random-weight model built here')
    parser.add_argument('--memory-limit-mb', type=int, default=2048,
                        help='address space allowed above the start-up size (0: no limit)')
    parser.add_argument('--case-timeout', type=float, default=10.0)
    parser.add_argument('--json', default=None, help='also write the report as JSON here')
    args = parser.parse_args(argv)
    report = run(args.cases, args.seed, args.checkpoint, args.memory_limit_mb, args.case_timeout)
    print(format_report(report))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(report, handle, indent=1)
    return 1 if report['bad'] else 0


if __name__ == '__main__':
    sys.exit(main())
