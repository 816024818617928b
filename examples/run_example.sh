#!/usr/bin/env bash
# Set up lstmgen and run its main job on the shipped example model (examples/sine_lstm.keras):
# inspect it, generate C / Python / MATLAB into build/, and verify each against Keras.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
python -m pip install -q --disable-pip-version-check -e '.[keras,verify]'
MODEL=examples/sine_lstm.keras

lstmgen inspect "$MODEL"
for target in c python matlab; do
    lstmgen generate "$MODEL" --target "$target" --name sine --out "build/$target"
done
lstmgen verify "$MODEL" --target c
lstmgen verify "$MODEL" --target python
if command -v octave-cli > /dev/null; then
    lstmgen verify "$MODEL" --target matlab --precision double
else
    echo "GNU Octave not installed (apt-get install octave): skipped verifying the MATLAB code"
fi
