#!/usr/bin/env bash
# The HTML report, checked in a real browser: train the memorizing built-in workload, forget 60
# rows, audit against the original with --report audit.html, and have headless Chromium render
# the page to a PNG. Checks that the page renders (a tall, non-blank image with the verdict's
# colour and both histograms' colours) and prints the numbers recorded in BENCHMARKS.md.
# Needs chromium (Debian: apt-get install chromium). Usage: benchmarks/report_in_browser.sh [OUT_DIR]
set -euo pipefail
out=${1:-benchmarks/results/report_in_browser}
mkdir -p "$out"
export HF_HUB_OFFLINE=1
cd "$out"
[ -f original.safetensors ] || iau train "$(python3 -c 'import iau_cli, pathlib; print(pathlib.Path(iau_cli.__file__).parent.parent / "sample_configs/purchase_mlp.yaml")')" --out original.safetensors -q
python3 - <<'PY'
from iau_cli.recipes.train import restore
ids = restore("original.safetensors").partition().learn[:60]
data = restore("original.safetensors").data.train
open("forget.txt", "w").write("".join(data.ids[i] + "\n" for i in ids))
PY
iau unlearn original.safetensors -f forget.txt -o unlearned.safetensors --overwrite -q
iau audit unlearned.safetensors -f forget.txt --original original.safetensors --report audit.html --overwrite -q || true
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,2600 \
  --screenshot="$PWD/audit.png" "file://$PWD/audit.html" 2>/dev/null
python3 - <<'PY'
import struct, zlib
raw = open("audit.png", "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", raw[16:24])
# decode the IDAT stream (8-bit RGB/RGBA, filter type per row) just enough to count colours
pos, data = 8, b""
while pos < len(raw):
    length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
    if kind == b"IDAT":
        data += raw[pos + 8:pos + 8 + length]
    pos += 12 + length
channels = {2: 3, 6: 4}[raw[25]]
pixels = zlib.decompress(data)
stride = width * channels
rows, prev = [], bytearray(stride)
for y in range(height):
    f, line = pixels[y * (stride + 1)], bytearray(pixels[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - channels] if i >= channels else 0
        b, c = prev[i], prev[i - channels] if i >= channels else 0
        p = [0, a, b, (a + b) // 2, None][f] if f < 4 else None
        if f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else b if pb <= pc else c
        line[i] = (line[i] + p) & 255
    rows.append(bytes(line)); prev = line
colours = {}
for line in rows[::4]:
    for x in range(0, stride, channels * 4):
        rgb = tuple(line[x:x + 3]); colours[rgb] = colours.get(rgb, 0) + 1
def near(target, tol=40):
    return sum(n for c, n in colours.items() if all(abs(c[i] - target[i]) <= tol for i in range(3)))
checks = {
    "size": f"{width}x{height}",
    "distinct colours (sampled)": len(colours),
    "verdict box (pass green or fail red) pixels": near((0xdf, 0xf5, 0xe1), 8) + near((0xfd, 0xe2, 0xe1), 8),
    "histogram blue pixels": near((0x1f, 0x77, 0xb4)),
    "histogram orange pixels": near((0xff, 0x7f, 0x0e)),
}
for k, v in checks.items():
    print(f"{k}: {v}")
assert len(colours) > 20 and checks["verdict box (pass green or fail red) pixels"] > 100
assert checks["histogram blue pixels"] > 50 and checks["histogram orange pixels"] > 50
print("rendered: ok")
PY
