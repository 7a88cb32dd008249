#!/usr/bin/env bash
# Build llama-cpp-python (the fast CPU generation path) from source for this CPU.
# PyPI only has a source distribution; pip caches the wheel, so only the first build
# on a machine takes minutes. The instruction sets are chosen explicitly (AVX-512 only
# where this CPU has it); AMX kernels stay off, the configuration the project was validated with.
set -euo pipefail
PIP="${1:-.venv/bin/pip}"
PYTHON="$(dirname "$PIP")/python"
VERSION="0.3.36"
if "$PYTHON" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
if grep -q avx512bw /proc/cpuinfo 2>/dev/null; then
  flags="$flags -DGGML_AVX512=ON"
  grep -q avx512vbmi /proc/cpuinfo && flags="$flags -DGGML_AVX512_VBMI=ON"
  grep -q avx512_vnni /proc/cpuinfo && flags="$flags -DGGML_AVX512_VNNI=ON"
fi
flags="$flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF -DGGML_OPENMP=ON"
echo "building llama-cpp-python $VERSION (first time on a machine: several minutes)"
CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PIP" install --quiet --no-binary llama-cpp-python "llama-cpp-python==$VERSION"
