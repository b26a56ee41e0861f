#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in their own build tree and runs each briefly,
# seeded with valid inputs (a shard, chunks, metadata; a study, a transform, a points CSV) so
# the fuzzer starts past the parsers' doors. SECONDS is split between the two targets.
#   run_fuzz_smoke.sh SOURCE_DIR BUILD_DIR [SECONDS]
set -euo pipefail
src="$1" build="$2" seconds="${3:-20}"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCYTONET_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 > "$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target store_fuzz ingest_formats_fuzz > "$build.build.log" 2>&1 ||
  { tail -50 "$build.build.log"; exit 1; }
corpus="$build/corpus"
mkdir -p "$corpus"
# Seeds: metadata files of the source tree's test fixtures are not checked in, so write a few.
printf '\x00{"zarr_format":3,"node_type":"array","shape":[10,10],"data_type":"uint8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[5,5]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"},{"name":"zstd","configuration":{"level":1}}]}' > "$corpus/meta_v3"
printf '\x00{"zarr_format":2,"shape":[10],"chunks":[5],"dtype":"<f4","compressor":{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1},"fill_value":"NaN","order":"F","filters":null}' > "$corpus/meta_v2"
printf '\x01' > "$corpus/shard"; head -c 4100 /dev/zero | tr '\0' '\377' >> "$corpus/shard"
export ASAN_OPTIONS=detect_leaks=0
"$build/tests/fuzz/store_fuzz" -max_total_time="$((seconds * 2 / 3))" -max_len=20000 -print_final_stats=1 "$corpus" 2>&1 | tail -15

formats="$build/corpus-ingest"
mkdir -p "$formats"
printf '\x00{"cytonet_transform":1,"affine":[[0.1,0,-70],[0,0,-20],[0,-0.1,80]],"displacement":{"nodes":[2,2],"spacing_px":[50,100],"values_mm":[0,0,0,1,0,0,0,2,0,1,2,3]}}' > "$formats/transform"
printf '\x01{"cytonet_study":1,"pixel_size_um":1.0,"sections":[{"brain":"B01","section":"0001","image":"B01/0001.tif","points":"p.csv","width":10,"height":20,"format":"tiff"}]}' > "$formats/study"
printf '\x02point_id,x_px,y_px,area,layer,hemisphere\n0,1.5,2.5,3,4,L\n1,nan,7,1,2,R\n' > "$formats/points"
"$build/tests/fuzz/ingest_formats_fuzz" -max_total_time="$((seconds - seconds * 2 / 3))" -max_len=4000 -print_final_stats=1 "$formats" 2>&1 | tail -8
echo "fuzz smoke: no crash in ${seconds}s"
