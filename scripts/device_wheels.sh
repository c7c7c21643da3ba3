#!/usr/bin/env bash
# Download, HERE (with network), the pure-Python / binary wheels the golf core and its
# tests need on the GPU device machine, into .whl/ (git-ignored), for
# scripts/device_check.sh to install there offline.
#
#   bash scripts/device_wheels.sh          # then carry .whl along with the device command
#
# The device machine (x86_64, CPython 3.12, no network) already has PyTorch, triton,
# numpy, sentencepiece, safetensors, typer and rich, but not pydantic (and its
# dependencies) nor, possibly, pytest (pygments too: pytest imports it; the device has
# it through rich, but an older one may be below pytest's floor). Versions are pinned to what .venv has
# (pydantic_core exactly to pydantic's own pin); one version of each, nothing else.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV_PY=${VENV_PY:-.venv/bin/python}
DEST=.whl
PACKAGES=(pydantic pydantic_core annotated_types typing_extensions typing_inspection
          pytest pluggy iniconfig packaging pygments)

# NAME==VERSION for each package, from the venv's installed metadata; pydantic_core
# from pydantic's Requires-Dist, so the pair always matches.
mapfile -t PINS < <("$VENV_PY" - "${PACKAGES[@]}" <<'EOF'
import importlib.metadata as md
import re
import sys

core_pin = next(
    r.split(";")[0].strip()
    for r in md.requires("pydantic")
    if re.match(r"pydantic[-_]core\s*==", r)
)
for name in sys.argv[1:]:
    if name == "pydantic_core":
        print(core_pin.replace(" ", ""))
    else:
        print(f"{name}=={md.version(name)}")
EOF
)

rm -rf "$DEST"
mkdir -p "$DEST"
for pin in "${PINS[@]}"; do
    echo "downloading $pin" >&2
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 \
        -d "$DEST" "$pin"
done

count=$(find "$DEST" -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#PINS[@]}" ]; then
    echo "expected ${#PINS[@]} wheels in $DEST, found $count" >&2
    exit 1
fi
ls -1 "$DEST"
du -sh "$DEST"
