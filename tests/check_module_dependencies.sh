#!/usr/bin/env bash
# Fails if a module includes a module it must not (DESIGN.md, "Modules and the one
# direction of dependencies"), or if anything but train/ includes LibTorch.
set -u
root="${1:-$(dirname "$0")/..}"
cd "$root" || exit 2
declare -A allowed=(
  [store]=""
  [dataset]="store"
  [ingest]="dataset store"
  [loader]="dataset store"
  [eval]="dataset store"
  [train]="dataset store loader eval"
)
status=0
for module in "${!allowed[@]}"; do
  [[ -d $module ]] || continue
  for other in store dataset ingest loader eval train cli; do
    [[ $other == "$module" ]] && continue
    [[ " ${allowed[$module]} " == *" $other "* ]] && continue
    hits=$(grep -rnE "#include +\"$other/" "$module" --include='*.h' --include='*.cc' --include='*.cu' 2>/dev/null)
    if [[ -n $hits ]]; then
      echo "$module/ must not include $other/:"; echo "$hits"; status=1
    fi
  done
  if [[ $module != train ]]; then
    hits=$(grep -rnE '#include +[<"](torch|ATen|c10)/' "$module" 2>/dev/null)
    if [[ -n $hits ]]; then echo "only train/ may include LibTorch:"; echo "$hits"; status=1; fi
  fi
done
# Only ingest's readers may include OpenSlide/libtiff/HDF5 (cli/ writes TIFF previews).
hits=$(grep -rnE '#include +[<"](openslide|tiffio|hdf5|H5Cpp)' store dataset loader eval train 2>/dev/null)
if [[ -n $hits ]]; then echo "slide-format libraries outside ingest/:"; echo "$hits"; status=1; fi
[[ $status == 0 ]] && echo "module dependencies follow DESIGN.md"
exit $status
