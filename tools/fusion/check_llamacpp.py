#!/usr/bin/env python3
"""Check a fused (deci) GGUF written by `sparsefuse fuse` in llama.cpp.

Loads the file in llama.cpp (llama-cpp-python, low-level API), runs a few
prompts, and compares llama.cpp's next-token logits at every position with
sparsefuse's on the same file and the same token ids. sparsefuse's logits come
from tools/fusion/sf_logits.c, a tiny program this script compiles against the
project's static library (BUILD/libsparsefuse.a).

    /opt/refvenv/bin/python tools/fusion/check_llamacpp.py -m /tmp/fused.gguf \\
        [--build build] [--threads 2] [--max-nmse 1e-3]

Per position NMSE = mean((sparsefuse - llama.cpp)^2) / var(llama.cpp), as in
tests/test_parity_models.c. Exit status 0 if the worst NMSE is <= --max-nmse,
1 otherwise (2 for setup errors).
"""

import argparse
import struct
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
from make_fixtures import Model, L  # noqa: E402  (llama-cpp-python wrappers)

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "<|im_start|>user\nWhat is the boiling point of water at sea level?<|im_end|>\n<|im_start|>assistant\n",
    "In 1998 the entry read: \"Wind NW 6, sea rough, visibility poor; two trawlers sheltering in the bay.\"",
]


@L.llama_log_callback
def _quiet(level, text, user):  # llama.cpp's load log would bury the result
    if level >= 4:  # GGML_LOG_LEVEL_ERROR
        sys.stderr.write(text.decode(errors="replace"))


def gguf_int_array(path, key):
    """The integer array `key` of a GGUF file's metadata, or None (llama.cpp's
    own metadata map leaves array values out)."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    ints = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def skip(t):
            if t == 8:
                f.seek(rd("<Q"), 1)
            elif t == 9:
                et, n = rd("<I"), rd("<Q")
                if et in sizes:
                    f.seek(sizes[et] * n, 1)
                else:
                    for _ in range(n):
                        skip(et)
            else:
                f.seek(sizes[t], 1)

        if f.read(4) != b"GGUF":
            return None
        rd("<I"), rd("<Q")
        for _ in range(rd("<Q")):
            name = f.read(rd("<Q")).decode(errors="replace")
            t = rd("<I")
            if name == key and t == 9:
                et, n = rd("<I"), rd("<Q")
                return [rd(ints[et]) for _ in range(n)] if et in ints else None
            skip(t)
    return None


def build_helper(build_dir):
    lib = os.path.join(build_dir, "libsparsefuse.a")
    if not os.path.exists(lib):
        sys.exit(f"check_llamacpp: {lib} not found; build the project first (cmake --build {build_dir})")
    src = os.path.join(HERE, "sf_logits.c")
    exe = os.path.join(build_dir, "sf_logits")
    if (not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src)
            or os.path.getmtime(exe) < os.path.getmtime(lib)):
        # the library's own dependencies, as CMakeLists.txt finds them (pkg-config)
        deps = subprocess.run(["pkg-config", "--libs", "lapacke", "openblas", "libpng", "jansson"],
                              capture_output=True, text=True).stdout.split()
        cmd = ["cc", "-O2", "-std=c11", "-I", os.path.join(REPO, "include"), src, lib, *deps, "-lm", "-lpthread",
               "-o", exe]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"check_llamacpp: building sf_logits failed:\n{' '.join(cmd)}\n{r.stderr}")
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True, help="the GGUF to check (fused deci, or any llama model)")
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="sparsefuse build dir (default: build)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-nmse", type=float, default=1e-3)
    args = ap.parse_args()

    exe = build_helper(os.path.abspath(args.build))
    L.llama_log_set(_quiet, None)
    m = Model(args.model, args.threads)
    n_layer = L.llama_model_n_layer(m.model)
    par = gguf_int_array(args.model, "sparsefuse.parallel_blocks")
    if par is not None:
        print(f"note: the file has sparsefuse.parallel_blocks = {par}: sparsefuse runs those groups on a shared "
              "input, llama.cpp ignores the key and runs them in sequence, so the logits are expected to differ; "
              "check a file written without --parallel-blocks")
    m.context(512, 512)
    prompts = [m.tokenize(p.encode(), True, True) for p in PROMPTS]
    ref = []
    for toks in prompts:
        m.clear()
        ref.append(m.decode(toks, 0, [True] * len(toks)))
    ref = np.concatenate(ref)

    with tempfile.TemporaryDirectory() as tmp:
        ids = os.path.join(tmp, "ids.txt")
        out = os.path.join(tmp, "logits.f32")
        with open(ids, "w") as f:
            for toks in prompts:
                f.write(" ".join(map(str, toks)) + "\n")
        r = subprocess.run([exe, args.model, ids, out, str(args.threads)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"check_llamacpp: sf_logits failed: {r.stderr.strip()}")
        info = r.stdout.split()
        ours = np.fromfile(out, dtype=np.float32)
    if ours.size != ref.size:
        sys.exit(f"check_llamacpp: sparsefuse gave {ours.size} logits, llama.cpp {ref.size}")
    ours = ours.reshape(ref.shape)
    sf_layers = int(info[info.index("n_layer") + 1])

    nmse = ((ours - ref) ** 2).mean(axis=1) / ref.var(axis=1)
    same_top = (ours.argmax(axis=1) == ref.argmax(axis=1)).mean()
    print(f"model {args.model}: llama.cpp n_layer {n_layer}, sparsefuse n_layer {sf_layers} ({' '.join(info[4:6])})")
    print(f"{len(prompts)} prompts, {ref.shape[0]} positions, vocab {ref.shape[1]}")
    print(f"NMSE worst {nmse.max():.3g}, mean {nmse.mean():.3g}, median {np.median(nmse):.3g}; "
          f"same top token {100 * same_top:.1f}%")
    ok = nmse.max() <= args.max_nmse and n_layer == sf_layers
    print("OK" if ok else f"FAIL (target NMSE <= {args.max_nmse:g}, equal layer counts)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
