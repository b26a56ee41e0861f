#!/usr/bin/env bash
# Installs what cytonet needs on Debian 12 and builds it. Idempotent: a second run only
# checks, then rebuilds incrementally.
#
#   scripts/setup.sh            # apt packages, Python venv, configure + build (Release)
#
# Environment:
#   CYTONET_VENV   virtual environment (default: $HOME/.cache/cytonet/venv, outside the checkout
#                  so CI and later runs reuse it)
#   CYTONET_BUILD  build directory (default: build/ in the checkout)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CYTONET_VENV:-$HOME/.cache/cytonet/venv}"
build="${CYTONET_BUILD:-$root/build}"

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libblosc-dev libzstd-dev libdeflate-dev libisal-dev zlib1g-dev
  libtbb-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpng-dev libtiff-dev
  pybind11-dev python3-dev python3-venv clang-14 libclang-rt-14-dev clang-format-14
  libopenslide-dev libhdf5-dev libopenmpi-dev openmpi-bin libnanoflann-dev
  libvips-tools libtiff-tools slurmctld slurmd slurm-client munge
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libyaml-cpp-dev
  libeigen3-dev  # eval/: PCA and least squares
  libgloo-dev  # headers for c10d's Gloo backend (the Gloo that runs is inside libtorch_cpu)
)
python_packages=(
  "torch==2.11.*" "zarr>=3,<4" "tensorstore" "numcodecs" "numpy" "scikit-learn"
  "pytest" "jsonschema" "ome-zarr-models" "h5py" "tifffile" "opencv-python-headless" "matplotlib"
)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The venv records what it was built from; rebuild it when the package list changes.
stamp="$venv/.cytonet-packages"
wanted="$(printf '%s\n' "${python_packages[@]}")"
if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  log "creating Python environment in $venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "${python_packages[@]}"
  printf '%s' "$wanted" > "$stamp"
fi

torch_prefix="$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  log "configuring $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCYTONET_PYTHON="$venv/bin/python" -DCMAKE_PREFIX_PATH="$torch_prefix"
fi
log "building"
cmake --build "$build" --parallel "$(nproc)"

# The Python module goes into the virtual environment the way users install it: pip
# install of the checkout (pyproject.toml, scikit-build-core). Redone only when its sources
# changed; the tests import the module of $build/python instead.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$site/cytonet-build.pth"  # what earlier set-ups used instead
package_stamp="$venv/.cytonet-package"
package_sources="$(cd "$root" && find CMakeLists.txt pyproject.toml store dataset loader python -type f \
  -not -name '*.pyc' | sort | xargs sha1sum | sha1sum)"
if [[ "$(cat "$package_stamp" 2>/dev/null)" != "$package_sources" ]] || ! "$venv/bin/python" -c 'import cytonet' 2>/dev/null; then
  log "installing the cytonet Python package into $venv"
  "$venv/bin/python" -m pip install -q "$root"
  printf '%s' "$package_sources" > "$package_stamp"
fi
