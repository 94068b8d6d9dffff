# Writes the seed images of ImageDecoderFuzz (tiny JPEG and PNG files of every kind the decoder
# handles) into the folder given as the only argument. Needs Pillow:
#   python Fuzz/ImageDecoderFuzz/make_seeds.py Fuzz/ImageDecoderFuzz/seeds
import sys, io, os
from PIL import Image
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
w = h = 16
def grad(mode):
    im = Image.new("RGB", (w, h))
    im.putdata([(x * 16, y * 16, (x * y) % 256) for y in range(h) for x in range(w)])
    return im
rgb = grad("RGB")
rgb.save(f"{out}/baseline.jpg", quality=75)
rgb.save(f"{out}/progressive.jpg", quality=75, progressive=True)
rgb.save(f"{out}/subsample444.jpg", quality=90, subsampling=0)
rgb.resize((17, 9)).save(f"{out}/odd-size.jpg", quality=50)
rgb.convert("L").save(f"{out}/gray.jpg", quality=75)
rgb.convert("CMYK").save(f"{out}/cmyk.jpg", quality=75)
rgb.save(f"{out}/rgb.png")
rgb.quantize(16).save(f"{out}/palette.png")
rgba = rgb.convert("RGBA"); rgba.putalpha(128); rgba.save(f"{out}/rgba.png")
rgb.convert("L").save(f"{out}/gray.png")
rgb.convert("LA").save(f"{out}/gray-alpha.png")
rgb.convert("1").save(f"{out}/bilevel.png")
Image.new("I;16", (w, h)).save(f"{out}/gray16.png")
# Pillow cannot write Adam7; write it with the png encoder via raw zlib.
import zlib, struct
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def png(width, height, bitdepth, colortype, interlace, raw_rows, extra=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, colortype, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b"")
# 16-bit RGB, non-interlaced, 4x4
rows = b"".join(b"\x00" + b"".join(struct.pack(">HHH", x * 4000, y * 4000, 65535) for x in range(4)) for y in range(4))
open(f"{out}/rgb16.png", "wb").write(png(4, 4, 16, 2, 0, rows))
# Adam7 interlaced 8-bit RGB 8x8: 7 passes, each row filter byte 0.
def adam7(width, height, bpp, pixel):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    data = b""
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, width, dx)); ys = list(range(y0, height, dy))
        if not xs or not ys: continue
        for y in ys:
            data += b"\x00" + b"".join(pixel(x, y) for x in xs)
    return data
open(f"{out}/interlaced.png", "wb").write(png(8, 8, 8, 2, 1, adam7(8, 8, 3, lambda x, y: bytes([x * 30, y * 30, 128]))))
# tRNS on a palette image, and a gAMA chunk.
plte = chunk(b"PLTE", bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]))
trns = chunk(b"tRNS", bytes([0, 128]))
rows = b"".join(b"\x00" + bytes([(x + y) % 4 for x in range(4)]) for y in range(4))
open(f"{out}/palette-trns.png", "wb").write(png(4, 4, 8, 3, 0, rows, chunk(b"gAMA", struct.pack(">I", 45455)) + plte + trns))
for name in sorted(os.listdir(out)):
    print(name, os.path.getsize(f"{out}/{name}"))
