# Sourced by .ci/run and examples/run_example.sh before they install anything with pip:
# stops with a clear line where pip would fail (no `python` command, or the system's own
# Python, which Debian marks externally managed), instead of pip's own error.
lstmgen_venv_hint() {
    echo "    python3 -m venv .venv && . .venv/bin/activate    (Debian: apt-get install python3-venv first)" >&2
}
if ! command -v python > /dev/null; then
    echo "lstmgen: no 'python' command here; make a virtual environment first (one line):" >&2
    lstmgen_venv_hint
    exit 1
fi
if python - << 'PY'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
PY
then
    echo "lstmgen: $(command -v python) is the system's own Python, which pip may not install" \
        "into (externally-managed-environment); make a virtual environment first (one line):" >&2
    lstmgen_venv_hint
    exit 1
fi
echo "Python: $(command -v python) ($(python -c 'import sys; print(sys.version.split()[0])'))"
