"""Load a checkpoint written by `train --save` with numpy and check it predicts like the Rust
code: the test accuracy computed here must match the one `train` stored in the metadata.

Usage: python3 scripts/check_checkpoint.py MODEL.safetensors [DATA_DIR]
Needs: pip install numpy safetensors
"""
import gzip
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "data/mnist"

tensors = load_file(path)
W, b = tensors["W"], tensors["b"]  # float32 [784, 10] and [10]
with safe_open(path, "np") as f:
    meta = f.metadata()


def idx(name, offset):
    with gzip.open(f"{data}/{name}") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


x = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255
y = idx("t10k-labels-idx1-ubyte.gz", 8)
logits = x @ W + b  # the tutorial's x·W + b
pred = logits.argmax(axis=1)
acc = (pred == y).mean()
print(f"W {W.shape} {W.dtype}, b {b.shape} {b.dtype}, metadata {sorted(meta)}")
print(f"first 10 predictions {pred[:10].tolist()}")
print(f"numpy test accuracy {acc:.6f}; train reported {meta['test_accuracy']}")
# f32 summation order differs between numpy and the SIMD kernels: allow 2 of 10 000 argmax
# flips on near-ties.
assert abs(acc - float(meta["test_accuracy"])) <= 2e-4, "predictions differ"
print("OK")
