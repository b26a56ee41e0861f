#!/usr/bin/env bash
# Fails, listing the files, when any C++ source of the tree differs from what clang-format
# (the pinned .clang-format, clang-format 14) makes of it. Fix with:
#   git ls-files '*.cc' '*.h' '*.cu' | xargs clang-format-14 -i
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The pinned version only: another clang-format formats differently.
formatter="$(command -v clang-format-14 || true)"
if [[ -z "$formatter" ]]; then
  echo "check_format: clang-format-14 is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu')
else
  mapfile -t files < <(find . -path ./build -prune -o \( -name '*.cc' -o -name '*.h' -o -name '*.cu' \) -print)
fi
bad=()
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue
  "$formatter" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
echo "check_format: ${#files[@]} files checked, ${#bad[@]} not formatted"
if ((${#bad[@]})); then
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
