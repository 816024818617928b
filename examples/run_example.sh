#!/usr/bin/env bash
# Set up lstmgen and run its main job on the shipped example model (examples/sine_lstm.keras):
# inspect it, save its IR, generate C / Python / numpy / MATLAB from it into build/, verify
# each against Keras.
# Run it inside a virtual environment (README.md); it needs no root.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/python_env.sh
echo "== installing lstmgen with its keras and verify extras (pip; the first run downloads TensorFlow)"
python -m pip install -q --disable-pip-version-check -e '.[keras,verify]'
MODEL=examples/sine_lstm.keras

lstmgen inspect "$MODEL"
# the IR, saved once: generating from it needs no TensorFlow (the files are the same)
mkdir -p build
lstmgen save-ir "$MODEL" build/sine.npz
for target in c python numpy matlab; do
    lstmgen generate build/sine.npz --target "$target" --name sine --out "build/$target"
done
lstmgen verify "$MODEL" --target c --report build/report.html
lstmgen verify "$MODEL" --target python
lstmgen verify "$MODEL" --target numpy
if command -v octave-cli > /dev/null; then
    lstmgen verify "$MODEL" --target matlab --precision double
else
    echo "GNU Octave not installed (apt-get install octave, as root): skipped verifying the MATLAB code"
fi
echo "== the verify report of the C code: build/report.html"
