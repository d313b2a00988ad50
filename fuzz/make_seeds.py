#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (tiny valid inputs) to fuzz/seeds/<target>/.

Run from anywhere: python3 fuzz/make_seeds.py. Deterministic (gzip mtime 0). The JPEG seed
needs Pillow (pip install pillow); without it that one seed is skipped."""
import gzip, io, json, os, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))

def labels(ls):
    return bytes([0, 0, 8, 1]) + struct.pack(">I", len(ls)) + bytes(ls)

def images(n, rows=28, cols=28):
    return bytes([0, 0, 8, 3]) + struct.pack(">III", n, rows, cols) + bytes((i * 7) % 256 for i in range(n * rows * cols))

def gz(b):
    return gzip.compress(b, mtime=0)

def safetensors(tensors):
    header, data = {}, b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data

def dataset(flags, files):
    files = [gz(f) if flags & (1 << i) else f for i, f in enumerate(files)]
    return bytes([flags]) + b"".join(struct.pack("<H", len(f)) for f in files[:3]) + b"".join(files)

def png(w, h, pixels, color_type=0):
    """A minimal PNG: 8-bit gray (0) or gray+alpha (4), one IDAT."""
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    per = 1 if color_type == 0 else 2
    rows = b"".join(b"\x00" + bytes(pixels[r * w * per:(r + 1) * w * per]) for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")

def digit(w=12, h=12, ink=255, paper=0):
    return [ink if 3 <= c < 9 and 2 <= r < 10 else paper for r in range(h) for c in range(w)]

def jpeg():
    try:
        from PIL import Image
    except ImportError:
        return None
    out = io.BytesIO()
    Image.frombytes("L", (12, 12), bytes(digit(ink=20, paper=230))).save(out, "JPEG", quality=90)
    return out.getvalue()

def npy(descr, shape, raw, version=1):
    """A .npy file as numpy writes it: the dict padded with spaces to a multiple of 64."""
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    pre = 10 if version == 1 else 12
    d += " " * ((64 - (pre + len(d) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return b"\x93NUMPY" + bytes([version, 0]) + size + d.encode() + raw

seeds = {
    "npy": {
        "f4_2x3": npy("<f4", [2, 3], struct.pack("<6f", 0, 0.5, 1, -1, 2, 3)),
        "u1_2x2x2_v2": npy("|u1", [2, 2, 2], bytes(range(8)), 2),
        "i8_labels_v3": npy("<i8", [4], struct.pack("<4q", 0, 3, 1, 2), 3),
        "idx_f32": bytes([0, 0, 0x0D, 2]) + struct.pack(">II", 2, 2) + struct.pack(">4f", 1, 2, 3, 4),
    },
    "idx_images": {"two": images(2), "empty": images(0)},
    "idx_labels": {"three": labels([1, 2, 3]), "empty": labels([])},
    "gzip_idx": {"labels": b"\x01" + gz(labels([3, 1, 4])), "images": b"\x00" + gz(images(1))},
    "dataset_dir": {
        "raw": dataset(0, [images(3), labels([0, 1, 2]), images(2), labels([7, 9])]),
        "gz_dot": dataset(0x1F, [images(3), labels([0, 1, 2]), images(2), labels([7, 9])]),
    },
    "checkpoint": {
        "small": safetensors([("W", [3, 2], [0.5, -1, 2, 0, 1, 1]), ("b", [2], [0, 0.25])]),
    },
}
seeds["image_file"] = {
    "gray.png": png(12, 12, digit()),
    "alpha.png": png(12, 12, [v for m in digit() for v in (0, 255 if m else 0)], 4),
    "digit.pgm": b"P5 12 12 255\n" + bytes(digit(ink=10, paper=240)),
    "ascii.pgm": b"P2\n3 2\n255\n0 128 255\n255 128 0\n",
}
if jpeg() is not None:
    seeds["image_file"]["digit.jpg"] = jpeg()
seeds["class_names"] = {
    "fashion": b"T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n",
    "digits": "".join(f"{i}\n" for i in range(10)).encode(),
}
for target, files in seeds.items():
    d = os.path.join(here, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
print("seeds written to", os.path.join(here, "seeds"))
