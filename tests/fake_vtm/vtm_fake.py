"""Stand-ins for VTM's EncoderApp / DecoderApp, used only by tests/test_vvc.py.

They accept the command-line arguments the codec passes to the real JVET tools
(EncoderApp: -c CFG -i IN.yuv -b OUT.bin -q QP -f FRAMES -wdt W -hgt H -fr FPS
--InputBitDepth=8 --OutputBitDepth=8 --Level=L; DecoderApp: -b IN.bin -o REC.yuv -d 8),
check them as strictly as the real tools would need (file sizes, planar 8-bit YUV 4:2:0 layout,
cfg file readable with an IntraPeriod entry) and do the actual coding with the ffmpeg bundled with
imageio-ffmpeg (libvvenc / native vvc decoder). Usage: python vtm_fake.py encoder|decoder ARGS...
"""
import os
import subprocess
import sys

import imageio_ffmpeg


def fail(msg):
    print(f'ERROR: {msg}', file=sys.stderr)
    sys.exit(1)


def parse(argv, flags, options):
    """Parse '-x value' flags and '--Key=value' options; anything else is an error."""
    values, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith('--') and '=' in arg:
            key, value = arg[2:].split('=', 1)
            if key not in options:
                fail(f'unknown option {arg}')
            values[key] = value
            i += 1
        elif arg in flags and i + 1 < len(argv):
            values.setdefault(arg, []).append(argv[i + 1])
            i += 2
        else:
            fail(f'unknown or incomplete option {arg}')
    return values


def read_cfg(path):
    if not os.path.isfile(path):
        fail(f'cannot open cfg file {path}')
    cfg = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0]
            if ':' in line:
                key, value = line.split(':', 1)
                cfg[key.strip()] = value.strip()
    if 'IntraPeriod' not in cfg:
        fail(f'{path} has no IntraPeriod entry')
    return cfg


def encoder(argv):
    args = parse(argv, {'-c', '-i', '-b', '-q', '-f', '-wdt', '-hgt', '-fr'},
                 {'InputBitDepth', 'OutputBitDepth', 'Level'})
    for flag in ('-c', '-i', '-b', '-q', '-f', '-wdt', '-hgt', '-fr'):
        if flag not in args:
            fail(f'missing {flag}')
    if args.get('InputBitDepth') != '8':
        fail('this test setup expects --InputBitDepth=8')
    if 'Level' not in args:
        fail('missing --Level')
    cfg = {}
    for path in args['-c']:
        cfg.update(read_cfg(path))
    width, height = int(args['-wdt'][0]), int(args['-hgt'][0])
    frames, qp = int(args['-f'][0]), int(args['-q'][0])
    src = args['-i'][0]
    expected = frames * width * height * 3 // 2
    if not os.path.isfile(src) or os.path.getsize(src) < expected:
        fail(f'{src} holds fewer than {frames} frames of {width}x{height} 8-bit 4:2:0')
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), '-nostdin', '-loglevel', 'error', '-f', 'rawvideo',
           '-pix_fmt', 'yuv420p', '-s', f'{width}x{height}', '-r', args['-fr'][0], '-i', src,
           '-frames:v', str(frames), '-pix_fmt', 'yuv420p10le', '-c:v', 'libvvenc',
           '-qp', str(qp), '-qpa', '0']
    if int(cfg['IntraPeriod']) != 1:
        cmd += ['-vvenc-params', 'PicReordering=0:GOPSize=8:DecodingRefreshType=none:IntraPeriod=-1']
    proc = subprocess.run(cmd + ['-f', 'vvc', '-y', args['-b'][0]], stderr=subprocess.PIPE)
    if proc.returncode:
        fail(proc.stderr.decode(errors='replace'))
    print(f'fake VTM EncoderApp: {frames} frames {width}x{height} QP {qp} '
          f'level {args["Level"]} -> {args["-b"][0]}')


def decoder(argv):
    args = parse(argv, {'-b', '-o', '-d'}, set())
    for flag in ('-b', '-o', '-d'):
        if flag not in args:
            fail(f'missing {flag}')
    if args['-d'][0] != '8':
        fail('this test setup expects -d 8')
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), '-nostdin', '-loglevel', 'error', '-f', 'vvc',
           '-i', args['-b'][0], '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-y', args['-o'][0]]
    proc = subprocess.run(cmd, stderr=subprocess.PIPE)
    if proc.returncode:
        fail(proc.stderr.decode(errors='replace'))
    print(f'fake VTM DecoderApp: {args["-b"][0]} -> {args["-o"][0]}')


if __name__ == '__main__':
    if os.environ.get('FAKE_VTM_LOG'):  # lets the tests check the exact command line
        with open(os.environ['FAKE_VTM_LOG'], 'a') as log:
            log.write(' '.join(sys.argv[1:]) + '\n')
    if len(sys.argv) < 2 or sys.argv[1] not in ('encoder', 'decoder'):
        fail('usage: vtm_fake.py encoder|decoder ARGS...')
    (encoder if sys.argv[1] == 'encoder' else decoder)(sys.argv[2:])
