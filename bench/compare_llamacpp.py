#!/usr/bin/env python3
"""sparsefuse against llama.cpp, side by side, on the same GGUFs and threads.

    python3 bench/compare_llamacpp.py [-m MODEL [-m MODEL ...]] [-t THREADS] [-r REPS]
                                      [-p N] [-n N] [-d N] [--tg-depth D]
                                      [--sparsefuse PATH] [--venv PATH] [--csv OUT]
                                      [--sparse MODEL=SIDE ...]

A bench matrix: every -m model (default: the SmolLM2-135M Q4_1 file) gets
ppN (default pp512), tgN (default tg128) and tgN at KV depth D (--tg-depth,
default 4096; 0 turns it off) on both engines, and one table at the end has a
row per model: the three tests on llama.cpp and sparsefuse with the ratio
sparsefuse / llama.cpp of the medians, sparsefuse's tg rate as effective
weight bandwidth, and the peak RSS of both.

llama.cpp is installed the way a user would get it: llama-cpp-python 0.3.36
built from source with GGML_NATIVE=ON by tools/setup_reference_env.sh, into
bench/.venv (or --venv PATH; nothing is installed if it already holds that
version). Its side is driven by this same file (``--llama-driver``, run with
the venv's Python) through the low-level ctypes API exactly as llama-bench
does it: a persistent ggml thread pool (poll 50) attached to each context;
ppN = one llama_decode of N random tokens (BOS first when the model adds it),
logits only for the last; tgN = N single-token decodes of random tokens; with
a depth d, d random tokens are decoded untimed into the KV cache first (in
chunks of 512); one warm-up each (the whole prompt for pp, one token for tg),
then the KV cache is cleared, the depth refilled and the timed run follows,
with a context of d + N positions per test.

The sparsefuse side runs ``sparsefuse bench -p N -n N -d d -r 1 -o json``,
which does the same (one warm-up, one timed run, random tokens, context
d + N).

Per engine, model and repetition there is one process for pp and tg (at depth
-d, default 0) and, with --tg-depth D, one more for tg alone at depth D. The
engines alternate (llama.cpp first on even repetitions, sparsefuse first on
odd ones), and the peak resident set of each process is its ru_maxrss from
os.wait4() on that child (Linux: KiB). For llama.cpp that includes the Python
interpreter and the llama_cpp import, which the driver measures before
loading the model and the table reports. With --sparse MODEL=SIDE, a third
engine joins the alternation on that model: sparsefuse's tg with the side-car
(decode steps sparse), in a second table against both dense engines. The table gives medians (and
min..max) over the repetitions; nothing here is final until run on a quiet
machine.
"""

import argparse
import ctypes
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LCP_VERSION = "0.3.36"
DEFAULT_MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # enum llama_flash_attn_type


# ---------------------------------------------------------------------------
# the llama.cpp side (runs inside the venv's Python)
# ---------------------------------------------------------------------------

def llama_driver(model_path, n_threads, n_prompt, n_gen, seed, flash_attn, n_depth=0, extra_bufts=True):
    """One process = one repetition of pp and tg, as llama-bench runs them.

    Prints one JSON object: pp_tps, tg_tps, baseline_rss_kib (this process
    before the model is loaded), llama_cpp version and system info."""
    import llama_cpp as L
    import llama_cpp.llama_cpp as LL

    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    libdir = os.path.join(os.path.dirname(L.__file__), "lib")

    class ThreadpoolParams(ctypes.Structure):  # struct ggml_threadpool_params (ggml.h)
        _fields_ = [("cpumask", ctypes.c_bool * 512), ("n_threads", ctypes.c_int), ("prio", ctypes.c_int),
                    ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool), ("paused", ctypes.c_bool)]

    ggml_base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
    ggml_cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"))
    ggml_base.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(ThreadpoolParams), ctypes.c_int]
    ggml_base.ggml_threadpool_params_init.restype = None
    ggml_cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
    ggml_cpu.ggml_threadpool_new.restype = ctypes.c_void_p
    ggml_cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
    ggml_cpu.ggml_threadpool_free.restype = None
    attach = LL._lib.llama_attach_threadpool
    attach.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    attach.restype = None

    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.use_extra_bufts = extra_bufts  # weight repacking and the AMX backend
    model = L.llama_model_load_from_file(model_path.encode(), mparams)
    if not model:
        sys.exit(f"llama driver: cannot load {model_path}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    add_bos = bool(L.llama_vocab_get_add_bos(vocab))
    bos = L.llama_vocab_bos(vocab)
    rng = random.Random(seed)

    # llama-bench: ggml_threadpool_params_default(n_threads), cpu mask 0x0 (no pinning), poll 50
    tpp = ThreadpoolParams()
    ggml_base.ggml_threadpool_params_init(ctypes.byref(tpp), n_threads)
    tpp.poll = 50
    threadpool = ggml_cpu.ggml_threadpool_new(ctypes.byref(tpp))
    if not threadpool:
        sys.exit("llama driver: ggml_threadpool_new failed")

    def new_context(n_ctx):
        cparams = L.llama_context_default_params()  # llama-bench: defaults, then these
        cparams.n_ctx = n_ctx
        cparams.n_batch = 2048
        cparams.n_ubatch = 512
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.flash_attn_type = FLASH_ATTN[flash_attn]
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            sys.exit("llama driver: llama_init_from_model failed")
        attach(ctx, threadpool, None)
        return ctx

    def decode(ctx, toks):
        arr = (L.llama_token * len(toks))(*toks)
        rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(toks)))
        if rc != 0:
            sys.exit(f"llama driver: llama_decode returned {rc}")

    def test_prompt(ctx, n):  # llama-bench test_prompt with n <= n_batch
        toks = [rng.randrange(n_vocab) for _ in range(n)]
        if add_bos:
            toks[0] = bos
        decode(ctx, toks)
        L.llama_synchronize(ctx)

    def test_gen(ctx, n):  # llama-bench test_gen
        tok = bos if add_bos else rng.randrange(n_vocab)
        for _ in range(n):
            decode(ctx, [tok])
            L.llama_synchronize(ctx)
            tok = rng.randrange(n_vocab)

    def fill_depth(ctx):  # llama-bench -d: n_depth tokens in the cache before the test, untimed
        for i in range(0, n_depth, 512):
            toks = [rng.randrange(n_vocab) for _ in range(min(512, n_depth - i))]
            if i == 0 and add_bos:
                toks[0] = bos
            decode(ctx, toks)
        L.llama_synchronize(ctx)

    def timed(n_ctx, fn, n, n_warm):
        ctx = new_context(n_depth + n_ctx)
        fill_depth(ctx)
        fn(ctx, n_warm)
        L.llama_memory_clear(L.llama_get_memory(ctx), False)
        fill_depth(ctx)
        t0 = time.perf_counter_ns()
        fn(ctx, n)
        dt = (time.perf_counter_ns() - t0) / 1e9
        L.llama_free(ctx)
        return n / dt

    out = {"baseline_rss_kib": baseline_kib, "llama_cpp_version": L.__version__,
           "system_info": L.llama_print_system_info().decode(errors="replace").strip()}
    if n_prompt > 0:
        out["pp_tps"] = timed(n_prompt, test_prompt, n_prompt, n_prompt)
    if n_gen > 0:
        out["tg_tps"] = timed(n_gen, test_gen, n_gen, 1)
    ggml_cpu.ggml_threadpool_free(threadpool)
    L.llama_model_free(model)
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------
# the orchestrator (any Python 3.9+)
# ---------------------------------------------------------------------------

def log(msg):
    print(f"compare_llamacpp: {msg}", file=sys.stderr, flush=True)


def ensure_venv(venv):
    """The venv's python with llama-cpp-python LCP_VERSION, installing it if needed."""
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import llama_cpp; print(llama_cpp.__version__)"]
    if os.path.exists(py):
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == LCP_VERSION:
            return py
        have = r.stdout.strip() if r.returncode == 0 else "not importable"
        log(f"{venv}: llama-cpp-python is {have}; installing {LCP_VERSION}")
    else:
        log(f"{venv}: no venv yet; creating it")
    setup = os.path.join(REPO, "tools", "setup_reference_env.sh")
    log(f"running {setup} {venv} (builds llama.cpp from source; 15-30 min on 2 cores)")
    subprocess.run(["bash", setup, venv], check=True)
    r = subprocess.run(probe, capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() != LCP_VERSION:
        sys.exit(f"compare_llamacpp: {venv} still has no llama-cpp-python {LCP_VERSION}: {r.stderr.strip()}")
    return py


def run_measured(cmd):
    """Runs cmd; returns (exit code, stdout, stderr, peak RSS in KiB of that process)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)  # this child's own rusage
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return (p.returncode, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"),
                ru.ru_maxrss)


def fail(engine, cmd, code, err):
    tail = "\n".join(err.strip().splitlines()[-15:])
    sys.exit(f"compare_llamacpp: {engine} failed (exit {code}): {' '.join(cmd)}\n{tail}")


def run_llama(py, args, model, n_prompt, n_gen, n_depth, rep):
    """One llama.cpp process: pp n_prompt (if > 0) and tg n_gen, both at KV depth n_depth."""
    cmd = [py, os.path.abspath(__file__), "--llama-driver", "-m", model, "-t", str(args.threads),
           "-p", str(n_prompt), "-n", str(n_gen), "-d", str(n_depth), "--seed", str(1000 + rep),
           "--flash-attn", args.flash_attn] + (["--no-extra-bufts"] if args.no_extra_bufts else [])
    code, out, err, rss = run_measured(cmd)
    if code != 0:
        fail("llama.cpp", cmd, code, err)
    res = json.loads(out.strip().splitlines()[-1])
    return {"pp": res.get("pp_tps"), "tg": res.get("tg_tps"), "rss_kib": rss,
            "baseline_rss_kib": res["baseline_rss_kib"], "version": res["llama_cpp_version"],
            "system_info": res["system_info"]}


def run_sparsefuse(args, model, n_prompt, n_gen, n_depth, side=None):
    """One sparsefuse bench process: pp n_prompt (if > 0) and tg n_gen, both at KV depth n_depth;
    with side, the decode steps run sparse with that side-car."""
    cmd = [args.sparsefuse, "bench", "-m", model, "-t", str(args.threads), "-p", str(n_prompt),
           "-n", str(n_gen), "-d", str(n_depth), "-r", "1", "-o", "json"] + (["--sparse", side] if side else [])
    code, out, err, rss = run_measured(cmd)
    if code != 0:
        fail("sparsefuse", cmd, code, err)
    res = {"rss_kib": rss}
    at = f" @ d{n_depth}" if n_depth > 0 else ""
    tests = json.loads(out)
    for t in tests:
        if t["test"] == f"pp{n_prompt}{at}":
            res["pp"] = t["tps_mean"]
        elif t["test"] == f"tg{n_gen}{at}":
            res["tg"] = t["tps_mean"]
            res["weight_bytes"] = t.get("weight_bytes")
            res["sparse_bytes"] = t.get("sparse_bytes")
    want = ([f"pp{n_prompt}{at}"] if n_prompt > 0 else []) + [f"tg{n_gen}{at}"]
    if ("pp" not in res and n_prompt > 0) or "tg" not in res:
        sys.exit(f"compare_llamacpp: sparsefuse bench gave tests {[t['test'] for t in tests]}, "
                 f"expected {want}: {' '.join(cmd)}")
    return res


def run_engine(engine, py, args, model, rep):
    """One repetition of one engine on one model: a process for pp + tg at depth -d, then (with
    --tg-depth D > 0) a process for tg alone at depth D. Returns pp, tg, tgd (t/s) and the peak RSS
    (KiB) of each process."""
    def one(n_prompt, n_gen, n_depth):
        if engine == "llama.cpp":
            return run_llama(py, args, model, n_prompt, n_gen, n_depth, rep)
        return run_sparsefuse(args, model, n_prompt, n_gen, n_depth)

    if engine == SPARSE:  # decode only: prefill stays dense with a side-car
        r = run_sparsefuse(args, model, 0, args.n_gen, args.n_depth, args.sparse[model])
        r["tgd"] = r["rss_tgd_kib"] = None
        return r
    r = one(args.n_prompt, args.n_gen, args.n_depth)
    r["tgd"] = r["rss_tgd_kib"] = None
    if args.tg_depth > 0:
        d = one(0, args.n_gen, args.tg_depth)
        r["tgd"], r["rss_tgd_kib"] = d["tg"], d["rss_kib"]
    return r


SPARSE = "sparsefuse+side-car"


def print_sparse_table(args, results):
    """tg of the models given a side-car: llama.cpp dense, sparsefuse dense and sparse, alternated."""
    _, tg_l, _ = labels(args)
    print()
    print(f"{tg_l} with a side-car (sparsefuse bench --sparse; decode steps sparse), in the same alternation:")
    print()
    print(f"| model | side-car | {tg_l} llama.cpp | {tg_l} sparsefuse dense | {tg_l} sparsefuse sparse | "
          "sparse / llama.cpp | sparse / dense | MiB read / token (sparse) | GB/s of those bytes |")
    print("| --- | --- |" + " ---: |" * 7)
    for m in args.model:
        if m not in args.sparse:
            continue
        ll, sf, sp = (results[m][e] for e in ("llama.cpp", "sparsefuse", SPARSE))
        a, b, c = (med([r["tg"] for r in e]) for e in (ll, sf, sp))
        sb = sp[0].get("sparse_bytes")
        cells = [os.path.basename(m), os.path.basename(args.sparse[m]), fmt_rate([r["tg"] for r in ll]),
                 fmt_rate([r["tg"] for r in sf]), fmt_rate([r["tg"] for r in sp]),
                 f"{c / a:.3f}" if a and c else "-", f"{c / b:.3f}" if b and c else "-",
                 f"{sb / 1048576:.1f}" if sb else "-", f"{sb * c / 1e9:.2f}" if sb and c else "-"]
        print("| " + " | ".join(cells) + " |")


def sparsefuse_bandwidth(args):
    cmd = [args.sparsefuse, "bench", "--bandwidth", "-t", str(args.threads), "-o", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return next((t for t in json.loads(r.stdout) if t["test"] == "bandwidth"), None)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def num(x):
    return "-" if x is None else f"{x:.1f}" if x >= 100 else f"{x:.2f}"


def fmt_rate(xs):
    """median, and (min..max) when there is more than one repetition."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return num(xs[0])
    return f"{num(statistics.median(xs))} ({num(min(xs))}..{num(max(xs))})"


CSV_HEADER = ("model,threads,n_prompt,n_gen,n_depth,tg_depth,engine,rep,order,"
              "pp_tps,tg_tps,tgd_tps,peak_rss_kib,peak_rss_tgd_kib")


def write_csv(path, rows):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        f.write(CSV_HEADER + "\n")
        for r in rows:
            f.write(",".join("" if v is None else str(v) for v in r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def labels(args):
    at = f"@d{args.n_depth}" if args.n_depth > 0 else ""
    return f"pp{args.n_prompt}{at}", f"tg{args.n_gen}{at}", f"tg{args.n_gen}@d{args.tg_depth}"


def print_table(args, results, bw):
    pp_l, tg_l, tgd_l = labels(args)
    depth = args.tg_depth > 0
    lv = next(r for m in args.model for r in results[m]["llama.cpp"])
    print(f"models: {len(args.model)}; threads: {args.threads}; repetitions: {args.reps} "
          f"(each test run in its own process per engine, engines alternating)")
    print(f"llama.cpp: llama-cpp-python {lv['version']}, flash attention {args.flash_attn}; "
          f"system_info: {lv['system_info']}")
    if args.no_extra_bufts:
        print("llama.cpp ran WITHOUT extra buffer types (--no-extra-bufts: no weight repacking, no AMX), "
              "so it is slower than a default llama.cpp here")
    if bw:
        print(f"memory bandwidth (sparsefuse bench --bandwidth, copy, {bw['n_threads']} threads): "
              f"best {bw['gbps']:.2f} GB/s, median {bw['gbps_median']:.2f} GB/s")
    else:
        print("memory bandwidth: sparsefuse bench --bandwidth failed; no ceiling to read the GB/s against")
    base = med([r["baseline_rss_kib"] for m in args.model for r in results[m]["llama.cpp"]]) / 1024
    approx = [m for m in args.model if not results[m]["sparsefuse"][0].get("weight_bytes")]
    if approx:
        print("tg GB/s marked * uses the GGUF file size as the bytes per token (an over-estimate: this "
              "sparsefuse bench reports no weight_bytes)")
    print()
    cols = ["model"]
    for t in (pp_l, tg_l) + ((tgd_l,) if depth else ()):
        cols += [f"{t} llama.cpp", f"{t} sparsefuse", f"{t} ratio"]
    cols += [f"sparsefuse {tg_l} GB/s", "peak RSS MiB llama.cpp", "peak RSS MiB sparsefuse"]
    if depth:
        cols += [f"peak RSS MiB {tgd_l} llama.cpp", f"peak RSS MiB {tgd_l} sparsefuse"]
    print("| " + " | ".join(cols) + " |")
    print("| --- |" + " ---: |" * (len(cols) - 1))
    for m in args.model:
        ll, sf = results[m]["llama.cpp"], results[m]["sparsefuse"]
        cells = [os.path.basename(m)]
        for key in ("pp", "tg") + (("tgd",) if depth else ()):
            a, b = med([r[key] for r in sf]), med([r[key] for r in ll])
            cells += [fmt_rate([r[key] for r in ll]), fmt_rate([r[key] for r in sf]),
                      f"{a / b:.3f}" if a and b else "-"]
        wb = sf[0].get("weight_bytes")
        mark = "" if wb else "*"
        wb = wb or os.path.getsize(m)
        tg = med([r["tg"] for r in sf])
        cells.append(f"{wb * tg / 1e9:.2f}{mark}" if tg else "-")
        rss_keys = ("rss_kib", "rss_tgd_kib") if depth else ("rss_kib",)
        for key in rss_keys:
            cells += [f"{med([r[key] for r in e]) / 1024:.1f}" for e in (ll, sf)]
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"t/s: median (min..max) over the repetitions; each process runs one warm-up and one timed run "
          f"per test. ratio: sparsefuse / llama.cpp of the medians (> 1: sparsefuse faster). "
          + (f"{tgd_l}: {args.n_gen} single-token decodes with {args.tg_depth} tokens already in the KV "
             f"cache (decoded untimed), in a process of its own. " if depth else "")
           + f"GB/s: bytes of the weight matrices a token reads (from sparsefuse bench) x sparsefuse's "
          f"{tg_l} t/s. Peak RSS: ru_maxrss of the {pp_l} + {tg_l} process"
          + (f" (and of the {tgd_l} process)" if depth else "")
          + f", median over the repetitions; it counts the mapped model pages touched, and for llama.cpp "
          f"the Python interpreter and llama_cpp import ({base:.1f} MiB, measured before the model load).")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", default=None,
                    help="GGUF model; give it several times for a matrix, one table row each "
                         f"(default: {os.path.relpath(DEFAULT_MODEL, REPO)})")
    ap.add_argument("-t", "--threads", type=int, default=2, help="threads for both engines (default: 2)")
    ap.add_argument("-r", "--reps", type=int, default=5, help="repetitions per engine and model (default: 5)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512, help="pp test length (default: 512)")
    ap.add_argument("-n", "--n-gen", type=int, default=128, help="tg test length, also of the deep tg (default: 128)")
    ap.add_argument("-d", "--n-depth", type=int, default=0,
                    help="tokens in the KV cache before the pp and tg tests, decoded untimed "
                         "(llama-bench -d; default: 0)")
    ap.add_argument("--tg-depth", type=int, default=4096, metavar="D",
                    help="a third test: tg of -n tokens with D tokens already in the KV cache, in a process "
                         "of its own per engine (context D + n); 0 turns it off (default: 4096)")
    ap.add_argument("--sparsefuse", default=os.path.join(REPO, "build", "sparsefuse"),
                    help="sparsefuse binary (default: build/sparsefuse)")
    ap.add_argument("--venv", default=None,
                    help="venv with llama-cpp-python " + LCP_VERSION + " (default: bench/.venv, set up if missing)")
    ap.add_argument("--flash-attn", choices=sorted(FLASH_ATTN), default="auto",
                    help="llama.cpp flash attention (default: auto, llama.cpp's context default, which is on "
                         "for the CPU backend; sparsefuse computes attention the same way)")
    ap.add_argument("--no-extra-bufts", action="store_true",
                    help="llama.cpp without extra buffer types (no weight repacking, no AMX backend): slower "
                         "llama.cpp, for hosts where its AMX path crashes; the table says so")
    ap.add_argument("--csv", metavar="OUT",
                    help="also write every repetition's numbers (one row per model, engine and repetition) "
                         "to this CSV file, rewritten after each repetition")
    ap.add_argument("--sparse", action="append", default=[], metavar="MODEL=SIDE",
                    help="also run sparsefuse's tg on MODEL with this side-car (sparsefuse sparsify), alternated "
                         "with both dense engines; a second table compares them (repeatable)")
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--llama-driver", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model = args.model or [DEFAULT_MODEL]

    if args.llama_driver:
        if len(args.model) != 1:
            sys.exit("llama driver: exactly one -m")
        llama_driver(args.model[0], args.threads, args.n_prompt, args.n_gen, args.seed, args.flash_attn,
                     args.n_depth, extra_bufts=not args.no_extra_bufts)
        return
    if (args.reps < 1 or args.threads < 1 or args.n_prompt < 1 or args.n_gen < 1 or args.n_depth < 0
            or args.tg_depth < 0):
        ap.error("-r, -t, -p and -n must be >= 1, -d and --tg-depth >= 0")
    models = []
    for m in args.model:
        m = os.path.abspath(m)
        if not os.path.isfile(m):
            ap.error(f"model {m} does not exist (scripts/fetch_models.sh fetches the models/ ones; "
                     "sparsefuse synth writes synthetic ones)")
        if m in models:
            log(f"{m} given twice; measuring it once")
        else:
            models.append(m)
    args.model = models
    sparse = {}
    for spec in args.sparse:
        m, sep, side = spec.partition("=")
        m, side = os.path.abspath(m), os.path.abspath(side)
        if not sep or m not in models:
            ap.error(f"--sparse {spec}: give MODEL=SIDE with MODEL one of the -m models")
        if not os.path.isfile(side):
            ap.error(f"--sparse {spec}: side-car {side} does not exist")
        sparse[m] = side
    args.sparse = sparse
    if args.tg_depth > 0 and args.tg_depth == args.n_depth:
        log(f"--tg-depth {args.tg_depth} is -d: the tg test already runs at that depth; no third test")
        args.tg_depth = 0
    args.sparsefuse = os.path.abspath(args.sparsefuse)
    if not os.access(args.sparsefuse, os.X_OK):
        ap.error(f"{args.sparsefuse} is not an executable; build it first "
                 "(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j)")
    py = ensure_venv(os.path.abspath(args.venv or os.path.join(REPO, "bench", ".venv")))

    bw = sparsefuse_bandwidth(args)
    pp_l, tg_l, tgd_l = labels(args)
    results = {m: {"llama.cpp": [], "sparsefuse": [], SPARSE: []} for m in args.model}
    rows = []
    for rep in range(args.reps):
        for m in args.model:
            name = os.path.basename(m)
            order = ["llama.cpp", "sparsefuse"] + ([SPARSE] if m in args.sparse else [])
            if rep % 2 == 1:
                order.reverse()
            for pos, engine in enumerate(order):
                r = run_engine(engine, py, args, m, rep)
                results[m][engine].append(r)
                rows.append((name, args.threads, args.n_prompt, args.n_gen, args.n_depth, args.tg_depth, engine,
                             rep, pos, r.get("pp"), r.get("tg"), r["tgd"], r["rss_kib"], r["rss_tgd_kib"]))
                deep = f", {tgd_l} {r['tgd']:.2f} t/s" if r["tgd"] is not None else ""
                log(f"rep {rep + 1}/{args.reps} {name} {engine}: {pp_l} {r.get('pp') or 0:.2f} t/s, "
                    f"{tg_l} {r.get('tg') or 0:.2f} t/s{deep}, peak RSS {r['rss_kib'] / 1024:.1f} MiB")
        if args.csv:
            write_csv(args.csv, rows)
    if args.csv:
        log(f"wrote {args.csv}")
    print_table(args, results, bw)
    if args.sparse:
        print_sparse_table(args, results)


if __name__ == "__main__":
    main()
