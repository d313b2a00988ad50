#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (tiny valid inputs) to fuzz/seeds/<target>/.

Run from anywhere: python3 fuzz/make_seeds.py. Deterministic (gzip mtime 0)."""
import gzip, json, os, struct

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

seeds = {
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
for target, files in seeds.items():
    d = os.path.join(here, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
print("seeds written to", os.path.join(here, "seeds"))
