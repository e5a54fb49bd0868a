#!/usr/bin/env python3
"""Layer-by-layer comparison of sparsefuse with llama.cpp (a debugging aid).

Runs a prompt through llama.cpp (llama-cpp-python, low-level API) with a graph
callback (cb_eval) that saves the f32 tensors whose names match, and through
sparsefuse with SF_DUMP_DIR set, then prints for each layer the NMSE of each
tensor and the first token positions that differ. This is how the parity
work in docs/parity.md found each op whose rounding differed.

  PY=/opt/refvenv/bin/python   # a venv from tools/setup_reference_env.sh
  $PY tools/reference/dump_layers.py -m models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      -p "The capital of France is Paris, and the" [--steps 1] [--layers 30]

--steps N compares the N-th single-token decode after the prompt instead of
the prompt batch. Names (llama.cpp's): attn_norm, Qcur (after RoPE; Gemma's
is before its q scaling), kqv_out, ffn_inp (llama), sa_out (gemma3),
ffn_norm, ffn_out (gemma3).
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp as L

NAMES = ["attn_norm", "Qcur", "kqv_out", "ffn_inp", "sa_out", "ffn_norm", "ffn_out"]


class Tensor(ctypes.Structure):  # struct ggml_tensor of the vendored ggml
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]


def llama_dump(model, prompt, steps, threads):
    saved = {}

    @ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)
    def cb(tp, ask, _user):
        if ask:
            return True
        t = Tensor.from_address(tp)
        name = t.name.decode()
        if t.type != 0 or name.split("-")[0] not in NAMES:
            return True
        ne, nb = list(t.ne), list(t.nb)
        if nb[0] != 4:
            return True
        out = np.zeros((ne[3], ne[2], ne[1], ne[0]), np.float32)
        for i3 in range(ne[3]):
            for i2 in range(ne[2]):
                for i1 in range(ne[1]):
                    addr = t.data + i3 * nb[3] + i2 * nb[2] + i1 * nb[1]
                    out[i3, i2, i1, :] = np.ctypeslib.as_array((ctypes.c_float * ne[0]).from_address(addr))
        saved[name] = out  # the last tensor of a name wins (Qcur: after RoPE)
        return True

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    m = L.llama_model_load_from_file(model.encode(), mp)
    vocab = L.llama_model_get_vocab(m)
    cp = L.llama_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 512
    cp.n_seq_max = 1
    cp.n_threads = cp.n_threads_batch = threads
    cp.cb_eval = cb
    ctx = L.llama_init_from_model(m, cp)
    buf = (L.llama_token * 1024)()
    n = L.llama_tokenize(vocab, prompt.encode(), len(prompt.encode()), buf, 1024, True, True)
    b = L.llama_batch_init(512, 0, 1)
    for i in range(n):
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = buf[i], i, 1, 1
        b.seq_id[i][0] = 0
    b.n_tokens = n
    assert L.llama_decode(ctx, b) == 0
    nv = L.llama_vocab_n_tokens(vocab)
    lg = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(n, nv)).copy()
    pos = n
    for _ in range(steps):  # greedy single-token decodes
        saved.clear()
        b.token[0], b.pos[0], b.n_seq_id[0], b.logits[0] = int(lg[-1].argmax()), pos, 1, 1
        b.seq_id[0][0] = 0
        b.n_tokens = 1
        assert L.llama_decode(ctx, b) == 0
        lg = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(1, nv)).copy()
        pos += 1
    return saved


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", "--prompt", required=True)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sparsefuse", default="build/sparsefuse")
    a = ap.parse_args()
    ref = llama_dump(a.model, a.prompt, a.steps, a.threads)
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, SF_DUMP_DIR=d)
        subprocess.run([a.sparsefuse, "run", "-m", a.model, "-p", a.prompt, "-n", str(a.steps + 1 if a.steps else 0),
                        "--temp", "0", "-t", str(a.threads)], env=env, check=True, capture_output=True)
        ours = {f[:-4]: np.fromfile(os.path.join(d, f), np.float32) for f in os.listdir(d)}
    for il in range(a.layers):
        row = []
        for nm in NAMES:
            k = f"{nm}-{il}"
            if k not in ref or k not in ours or ref[k].size != ours[k].size:
                continue
            T = ref[k].shape[1] if nm == "Qcur" else ref[k].shape[-2]
            r, o = ref[k].reshape(T, -1), ours[k].reshape(T, -1)
            diff = [t for t in range(T) if not np.array_equal(r[t], o[t])]
            nmse = float(((r - o) ** 2).sum() / max((r ** 2).sum(), 1e-30))
            row.append(f"{nm}: {nmse:.1e} differ@{diff[:3]}")
        if row:
            print(il, " | ".join(row))


if __name__ == "__main__":
    sys.exit(main())
