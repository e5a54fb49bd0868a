#!/usr/bin/env python3
"""Generate reference fixtures for sparsefuse from llama.cpp itself.

Uses the llama-cpp-python low-level bindings (ctypes wrappers of llama.h) so
that every knob llama.cpp exposes (add_special / parse_special, per-position
logits, KV-cache clearing) is explicit. See tools/reference/README.md for
the file formats and how to set up the environment.

    python make_fixtures.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --name smollm2 [--what tokenize,logits,greedy,perplexity]
"""

import argparse
import hashlib
import ctypes
import math
import os
import sys
import time

import numpy as np

try:
    import llama_cpp as L
except ImportError:  # pragma: no cover
    sys.exit("make_fixtures: llama_cpp not importable; run tools/setup_reference_env.sh "
             "and use the venv's python")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402  (test strings and prompts)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# --------------------------------------------------------------------------
# thin wrappers over the C API
# --------------------------------------------------------------------------

def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a, which the C tests recompute to know a synthetic model is the fixture's."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class Model:
    def __init__(self, path, n_threads, extra_bufts=True):
        L.llama_backend_init()
        self.path = path
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = 0
        # extra buffer types = weight repacking (REPACK) and, on CPUs with AMX,
        # the AMX backend, which crashes in llama_decode on some hosts
        mparams.use_extra_bufts = extra_bufts
        self.model = L.llama_model_load_from_file(path.encode(), mparams)
        if not self.model:
            sys.exit(f"make_fixtures: cannot load model {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos = L.llama_vocab_bos(self.vocab)
        self.n_threads = n_threads
        self.extra_bufts = extra_bufts
        with open(path, "rb") as f:
            data = f.read()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.fnv1a64 = fnv1a64(data) if len(data) <= (16 << 20) else None
        self.ctx = None
        self.ctx_size = 0

    def context(self, n_ctx, n_batch):
        """(Re)create the context with the given size; library defaults otherwise."""
        if self.ctx is not None and self.ctx_size == (n_ctx, n_batch):
            return
        if self.ctx is not None:
            L.llama_free(self.ctx)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = min(n_batch, cparams.n_ubatch)
        cparams.n_seq_max = 1
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            sys.exit("make_fixtures: llama_init_from_model failed")
        self.ctx_size = (n_ctx, n_batch)
        self.batch = L.llama_batch_init(n_batch, 0, 1)

    def tokenize(self, data: bytes, add_special: bool, parse_special: bool):
        # llama_tokenize returns the token count, or -(needed count) when the
        # buffer is too small; retry once with the exact size.
        n_max = len(data) + 8
        for _ in range(2):
            buf = (L.llama_token * n_max)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, n_max,
                                 add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            n_max = -n
        sys.exit(f"make_fixtures: llama_tokenize failed for {data[:40]!r}")

    def piece(self, tok: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, tok, buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, tok, buf, -n, 0, special)
        return buf.raw[:n]

    def is_eog(self, tok: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.vocab, tok))

    def clear(self):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, tokens, pos0, want_logits):
        """Decode tokens at positions pos0.. in sequence 0.

        want_logits: list of bools, one per token. Returns logits of the
        flagged tokens as an array [n_flagged, n_vocab] (float32, copied)."""
        b = self.batch
        n = len(tokens)
        assert n <= self.ctx_size[1]
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if want_logits[i] else 0
        b.n_tokens = n
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            sys.exit(f"make_fixtures: llama_decode returned {rc}")
        n_out = sum(1 for f in want_logits if f)
        ptr = L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).copy()


def hexs(b: bytes) -> str:
    return b.hex()


def ids(tokens) -> str:
    return " ".join(str(t) for t in tokens)


def header_lines(m: Model, name: str, what: str):
    info = L.llama_print_system_info().decode(errors="replace").strip()
    return [
        f"# sparsefuse reference fixture: {what}",
        f"# generated by tools/reference/make_fixtures.py from llama.cpp via llama-cpp-python {L.__version__}",
        f"# model {name}: {os.path.basename(m.path)}",
        f"# system_info: {info}",
        f"# n_threads {m.n_threads}",
    ] + ([] if m.extra_bufts else ["# extra buffer types off (no weight repacking, no AMX)"]) + (
        [f"# model sha256 {m.sha256}"]) + ([f"# model fnv1a64 {m.fnv1a64:016x}"] if m.fnv1a64 is not None else [])


def write_atomic(path, lines):
    tmp = path + ".tmp.write"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


# --------------------------------------------------------------------------
# (a) tokenizer
# --------------------------------------------------------------------------

def make_tokenize(m: Model, name: str, out_dir: str):
    lines = header_lines(m, name, "tokenizer")
    lines += [
        "# format: add_special<TAB>parse_special<TAB>input UTF-8 as hex<TAB>token ids (space separated, may be empty)",
        f"# add_bos {int(m.add_bos)} bos {m.bos}",
    ]
    strings = cases.tokenizer_strings()
    n_cases = 0
    for i, s in enumerate(strings):
        data = s.encode("utf-8")
        flags = [(0, 0)]
        if cases.in_special_subset(i, s):
            flags += [(1, 0), (1, 1)]
            if "<" in s:
                flags.append((0, 1))
        for add_special, parse_special in flags:
            toks = m.tokenize(data, bool(add_special), bool(parse_special))
            lines.append(f"{add_special}\t{parse_special}\t{hexs(data)}\t{ids(toks)}")
            n_cases += 1
    lines.insert(5, f"# {len(strings)} strings, {n_cases} cases")
    write_atomic(os.path.join(out_dir, f"tokenize-{name}.txt"), lines)


# --------------------------------------------------------------------------
# (b) logits, (c) greedy
# --------------------------------------------------------------------------

def pick_stride(n_vocab: int, max_ids: int = 4096) -> int:
    # smallest power of two keeping <= max_ids strided ids (4096: 49152 -> 16, 262144 -> 64)
    s = 1
    while n_vocab // s > max_ids:
        s *= 2
    return s


def prompt_tokens(m: Model, prompts):
    out = []
    for p in prompts:
        data = p.encode("utf-8")
        toks = m.tokenize(data, True, True)
        if not 12 <= len(toks) <= 24:
            print(f"warning: prompt {p!r} has {len(toks)} tokens (wanted 12..24)", file=sys.stderr)
        out.append((data, toks))
    return out


def make_logits(m: Model, name: str, out_dir: str, prompts, n_top=32, max_ids=4096):
    stride = pick_stride(m.n_vocab, max_ids)
    m.context(128, 128)
    lines = header_lines(m, name, "per-position logits")
    lines += [
        "# prompts tokenized with add_special=1 parse_special=1; whole prompt decoded in one batch, logits for every position",
        "# per position: 'pos I argmax A', 'top id:logit ...' (32 largest, descending), 'strided' = logits of ids 0,S,2S,...",
        f"model {name}",
        f"n_vocab {m.n_vocab}",
        f"stride {stride}",
        f"n_top {n_top}",
        f"n_prompts {len(prompts)}",
    ]
    for data, toks in prompt_tokens(m, prompts):
        m.clear()
        logits = m.decode(toks, 0, [True] * len(toks))
        lines.append(f"prompt {hexs(data)}")
        lines.append(f"tokens {ids(toks)}")
        for pos in range(len(toks)):
            row = logits[pos]
            amax = int(np.argmax(row))
            # sort by (-logit, id) so ties are deterministic
            top = np.lexsort((np.arange(m.n_vocab), -row))[:n_top]
            lines.append(f"pos {pos} argmax {amax}")
            lines.append("top " + " ".join(f"{int(t)}:{float(row[t]):.7g}" for t in top))
            lines.append("strided " + " ".join(f"{float(v):.6g}" for v in row[::stride]))
    write_atomic(os.path.join(out_dir, f"logits-{name}.txt"), lines)


def make_greedy(m: Model, name: str, out_dir: str, prompts, n_gen=64):
    m.context(128, 128)
    lines = header_lines(m, name, "greedy continuation")
    lines += [
        "# prompt tokenized with add_special=1 parse_special=1, decoded in one batch; then argmax of the last logits,",
        "# one token per decode step, no sampling, no penalties.",
        f"# format: prompt hex<TAB>prompt ids<TAB>generated ids<TAB>generated text hex<TAB>stop ({n_gen} tokens unless stopped at an",
        "# end-of-generation token, which is then the last generated id: stop=eog, else stop=length)",
        "# generated text = concatenation of llama_token_to_piece(id, lstrip=0, special=false) over the generated ids",
    ]
    for data, toks in prompt_tokens(m, prompts):
        m.clear()
        last = m.decode(toks, 0, [False] * (len(toks) - 1) + [True])[0]
        gen, stop = [], "length"
        pos = len(toks)
        while len(gen) < n_gen:
            t = int(np.argmax(last))
            gen.append(t)
            if m.is_eog(t):
                stop = "eog"
                break
            if len(gen) == n_gen:
                break
            last = m.decode([t], pos, [True])[0]
            pos += 1
        text = b"".join(m.piece(t) for t in gen)
        lines.append(f"{hexs(data)}\t{ids(toks)}\t{ids(gen)}\t{hexs(text)}\tstop={stop}")
        print(f"greedy {name}: {data[:30]!r} -> {text[:60]!r} ({stop})")
    write_atomic(os.path.join(out_dir, f"greedy-{name}.txt"), lines)


# --------------------------------------------------------------------------
# (d) perplexity, as tools/perplexity/perplexity.cpp (perplexity()) does it
# --------------------------------------------------------------------------

def chunk_nll(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(rows)[target] per row, like perplexity.cpp's log_softmax():
    max in float, exp in float, sum of exps in double."""
    mx = rows.max(axis=1)
    e = np.exp(rows - mx[:, None])                       # float32 [n, n_vocab]
    sum_exp = e.sum(axis=1, dtype=np.float64)            # double
    tgt = rows[np.arange(rows.shape[0]), targets]
    logp = (tgt - mx).astype(np.float64) - np.log(sum_exp)
    return -logp


def make_perplexity(m: Model, name: str, out_dir: str, text_path: str, n_ctx: int,
                    max_chunks: int, max_minutes: float):
    with open(text_path, "rb") as f:
        text = f.read()
    t0 = time.time()
    tokens = m.tokenize(text, True, False)
    print(f"perplexity {name}: {len(tokens)} tokens, tokenized in {time.time() - t0:.1f}s")
    n_chunk_max = len(tokens) // n_ctx
    n_chunk = n_chunk_max if max_chunks <= 0 else min(max_chunks, n_chunk_max)
    first = n_ctx // 2
    m.context(n_ctx, n_ctx)

    out_path = os.path.join(out_dir, f"perplexity-{name}.txt")
    head = header_lines(m, name, "WikiText-2 perplexity")
    head += [
        f"# as llama-perplexity -c {n_ctx} -b {n_ctx} (one sequence per batch): whole file tokenized with add_special=1",
        "# parse_special=0; chunk i = tokens[i*n_ctx, (i+1)*n_ctx), KV cache cleared, first token replaced by BOS if",
        "# the vocab adds BOS, positions n_ctx/2 .. n_ctx-2 scored against the next token (NLL via log-softmax in double)",
        "# 'chunk i running_ppl chunk_nll_sum': running_ppl = exp(sum NLL so far / count so far), chunk_nll_sum = sum of",
        f"# the {n_ctx - 1 - first} NLL values of chunk i",
        f"model {name}",
        f"file {os.path.basename(os.path.dirname(text_path))}/{os.path.basename(text_path)} {len(text)} bytes",
        f"n_ctx {n_ctx}",
        f"n_tokens {len(tokens)}",
        f"add_bos {int(m.add_bos)}",
        f"n_chunks_total {n_chunk_max}",
    ]
    nll_sum = nll2_sum = 0.0
    count = 0
    chunk_lines = []
    t_start = time.time()
    for i in range(n_chunk):
        start = i * n_ctx
        chunk = tokens[start:start + n_ctx]
        if m.add_bos:
            chunk[0] = m.bos
        m.clear()
        want = [p >= first for p in range(n_ctx)]
        logits = m.decode(chunk, 0, want)                # [n_ctx - first, n_vocab]
        rows = logits[: n_ctx - 1 - first]
        targets = np.array(tokens[start + first + 1: start + n_ctx], dtype=np.int64)
        v = chunk_nll(rows, targets)
        nll_sum += float(v.sum())
        nll2_sum += float((v * v).sum())
        count += len(v)
        chunk_lines.append(f"chunk {i} {math.exp(nll_sum / count):.6f} {float(v.sum()):.10g}")
        el = time.time() - t_start
        if i < 3 or (i + 1) % 20 == 0:
            print(f"perplexity {name}: [{i + 1}/{n_chunk}] ppl {math.exp(nll_sum / count):.4f} "
                  f"{el:.0f}s ({el / (i + 1):.2f}s/chunk)", flush=True)
        if max_minutes > 0 and el > max_minutes * 60 and i + 1 < n_chunk:
            print(f"perplexity {name}: stopping after {i + 1} chunks (time limit)")
            break
    n_done = len(chunk_lines)
    nll = nll_sum / count
    nll2 = nll2_sum / count - nll * nll
    ppl = math.exp(nll)
    err = ppl * math.sqrt(nll2 / (count - 1)) if nll2 > 0 else float("nan")
    lines = head + [
        f"n_chunks {n_done}" + ("" if n_done == n_chunk_max else f"  # PARTIAL: first {n_done} of {n_chunk_max} chunks"),
        f"count {count}",
        f"ppl {ppl:.6f} {err:.6f}",
        f"# final estimate: PPL = {ppl:.4f} +/- {err:.5f} over {n_done} chunks; {time.time() - t_start:.0f} s",
    ] + chunk_lines
    write_atomic(out_path, lines)
    print(f"perplexity {name}: PPL = {ppl:.4f} +/- {err:.5f} ({n_done} chunks, {time.time() - t_start:.0f}s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True, help="fixture name suffix, e.g. smollm2 or gemma3")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--what", default="tokenize,logits,greedy,perplexity")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strided-ids", type=int, default=4096,
                    help="at most this many strided logits per position in logits-NAME.txt (default 4096)")
    ap.add_argument("--no-extra-bufts", action="store_true",
                    help="no extra buffer types (weight repacking, AMX): llama.cpp's plain CPU kernels")
    ap.add_argument("--wikitext", default="/work/shared/data/wikitext-2/test.txt")
    ap.add_argument("--ppl-ctx", type=int, default=512)
    ap.add_argument("--ppl-chunks", type=int, default=0, help="max chunks (0 = all)")
    ap.add_argument("--ppl-minutes", type=float, default=0, help="stop after this many minutes (0 = no limit)")
    args = ap.parse_args()

    what = set(args.what.split(","))
    unknown = what - {"tokenize", "logits", "greedy", "perplexity"}
    if unknown:
        ap.error(f"unknown --what: {','.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)
    m = Model(args.model, args.threads, extra_bufts=not args.no_extra_bufts)
    print(f"model {args.name}: n_vocab {m.n_vocab} add_bos {m.add_bos} bos {m.bos}")
    prompts = cases.prompts(lambda s: len(m.tokenize(s.encode(), False, True)) == 1)
    if "tokenize" in what:
        make_tokenize(m, args.name, args.out)
    if "logits" in what:
        make_logits(m, args.name, args.out, prompts, max_ids=args.strided_ids)
    if "greedy" in what:
        make_greedy(m, args.name, args.out, prompts)
    if "perplexity" in what:
        make_perplexity(m, args.name, args.out, args.wikitext, args.ppl_ctx,
                        args.ppl_chunks, args.ppl_minutes)


if __name__ == "__main__":
    main()
