#!/usr/bin/env python3
"""Check the format and internal consistency of tests/fixtures/*-NAME.txt.

Needs only the Python standard library (no llama.cpp):

    python3 tools/reference/check_fixtures.py [FIXTURE_DIR]

Checks: every line parses as documented in README.md; top-32 lists are sorted
and their first id is the argmax; strided values match top values at shared
ids; the first greedy token equals the argmax at the last prompt position of
the same prompt in logits-NAME.txt; perplexity running values are consistent
with the per-chunk NLL sums and the final PPL.
"""

import glob
import math
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Bad(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def data_lines(path):
    with open(path, encoding="ascii") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            yield n, line


def parse_ids(s):
    return [int(x) for x in s.split()] if s else []


def check_tokenize(path):
    n_cases = 0
    for n, line in data_lines(path):
        f = line.split("\t")
        need(len(f) == 4, f"{path}:{n}: expected 4 tab-separated fields")
        need(f[0] in "01" and f[1] in "01", f"{path}:{n}: bad flags")
        bytes.fromhex(f[2]).decode("utf-8")
        parse_ids(f[3])
        n_cases += 1
    need(n_cases >= 120, f"{path}: only {n_cases} cases")
    return f"{n_cases} cases"


def read_logits(path):
    hdr, prompts = {}, []
    cur = None
    pos = None
    for n, line in data_lines(path):
        key, _, rest = line.partition(" ")
        if key in ("model", "n_vocab", "stride", "n_top", "n_prompts"):
            hdr[key] = rest if key == "model" else int(rest)
        elif key == "prompt":
            cur = {"hex": rest, "pos": []}
            prompts.append(cur)
        elif key == "tokens":
            cur["tokens"] = parse_ids(rest)
        elif key == "pos":
            p, _, a = rest.split()
            need(int(p) == len(cur["pos"]), f"{path}:{n}: positions out of order")
            pos = {"argmax": int(a)}
            cur["pos"].append(pos)
        elif key == "top":
            pos["top"] = [(int(i), float(v)) for i, v in (t.split(":") for t in rest.split())]
        elif key == "strided":
            pos["strided"] = [float(v) for v in rest.split()]
        else:
            raise Bad(f"{path}:{n}: unknown line {key!r}")
    return hdr, prompts


def check_logits(path):
    hdr, prompts = read_logits(path)
    V, S, K = hdr["n_vocab"], hdr["stride"], hdr["n_top"]
    need(len(prompts) == hdr["n_prompts"], f"{path}: prompt count")
    for pr in prompts:
        need(12 <= len(pr["tokens"]) <= 24, f"{path}: prompt with {len(pr['tokens'])} tokens")
        need(len(pr["pos"]) == len(pr["tokens"]), f"{path}: positions != tokens")
        for p in pr["pos"]:
            top, st = p["top"], p["strided"]
            need(len(top) == K, f"{path}: top size")
            need(len(st) == (V + S - 1) // S, f"{path}: strided size {len(st)}")
            need(all(top[i][1] >= top[i + 1][1] for i in range(K - 1)), f"{path}: top not sorted")
            need(top[0][0] == p["argmax"], f"{path}: top[0] != argmax")
            need(max(st) <= top[0][1] + 1e-4 * abs(top[0][1]) + 1e-5, f"{path}: strided above max")
            for i, v in top:
                if i % S == 0:
                    need(abs(st[i // S] - v) <= 1e-5 * max(1.0, abs(v)), f"{path}: strided/top mismatch at id {i}")
    return f"{len(prompts)} prompts, V={V}, S={S}"


def check_greedy(path, logits_prompts):
    by_hex = {p["hex"]: p for p in logits_prompts}
    n = 0
    for ln, line in data_lines(path):
        f = line.split("\t")
        need(len(f) == 5, f"{path}:{ln}: expected 5 fields")
        toks, gen = parse_ids(f[1]), parse_ids(f[2])
        bytes.fromhex(f[3])
        need(f[4] in ("stop=length", "stop=eog"), f"{path}:{ln}: bad stop field")
        need(len(gen) == 64 or f[4] == "stop=eog", f"{path}:{ln}: short run without eog")
        lp = by_hex.get(f[0])
        need(lp is not None and lp["tokens"] == toks, f"{path}:{ln}: prompt differs from logits file")
        need(gen[0] == lp["pos"][-1]["argmax"], f"{path}:{ln}: first token {gen[0]} != logits argmax")
        n += 1
    return f"{n} runs"


def check_perplexity(path):
    hdr, chunks = {}, []
    for n, line in data_lines(path):
        f = line.split()
        if f[0] == "chunk":
            need(int(f[1]) == len(chunks), f"{path}:{n}: chunk order")
            chunks.append((float(f[2]), float(f[3])))
        else:
            hdr[f[0]] = f[1:]
    n_ctx, count = int(hdr["n_ctx"][0]), int(hdr["count"][0])
    per = n_ctx - 1 - n_ctx // 2
    need(len(chunks) == int(hdr["n_chunks"][0]), f"{path}: chunk lines")
    need(count == per * len(chunks), f"{path}: count")
    need(int(hdr["n_chunks_total"][0]) == int(hdr["n_tokens"][0]) // n_ctx, f"{path}: n_chunks_total")
    total = 0.0
    for i, (running, s) in enumerate(chunks):
        total += s
        need(abs(math.exp(total / (per * (i + 1))) - running) <= 1e-5 * running + 1e-6,
             f"{path}: chunk {i} running ppl inconsistent")
    ppl = float(hdr["ppl"][0])
    need(abs(ppl - chunks[-1][0]) <= 1e-5 * ppl, f"{path}: final ppl != last running ppl")
    return f"{len(chunks)}/{hdr['n_chunks_total'][0]} chunks, PPL {ppl} +/- {hdr['ppl'][1]}"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures")
    ok = True
    names = sorted({os.path.basename(p).split("-", 1)[1][:-4] for p in glob.glob(os.path.join(d, "*-*.txt"))})
    for name in names:
        logits_prompts = []
        for kind in ("tokenize", "logits", "greedy", "perplexity"):
            path = os.path.join(d, f"{kind}-{name}.txt")
            if not os.path.exists(path):
                print(f"{kind}-{name}: missing")
                continue
            try:
                if kind == "tokenize":
                    msg = check_tokenize(path)
                elif kind == "logits":
                    msg = check_logits(path)
                    logits_prompts = read_logits(path)[1]
                elif kind == "greedy":
                    msg = check_greedy(path, logits_prompts)
                else:
                    msg = check_perplexity(path)
                print(f"{kind}-{name}: ok ({msg})")
            except (Bad, ValueError, KeyError, IndexError, UnicodeDecodeError) as e:
                ok = False
                print(f"{kind}-{name}: FAIL: {e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
