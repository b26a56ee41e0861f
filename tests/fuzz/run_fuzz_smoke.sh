#!/usr/bin/env bash
# Builds the libFuzzer target with clang in its own build tree and runs it briefly, seeded
# with valid inputs (a shard, chunks, metadata) so the fuzzer starts past the parsers' doors.
#   run_fuzz_smoke.sh SOURCE_DIR BUILD_DIR [SECONDS]
set -euo pipefail
src="$1" build="$2" seconds="${3:-20}"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCYTONET_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 > "$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target store_fuzz > "$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
corpus="$build/corpus"
mkdir -p "$corpus"
# Seeds: metadata files of the source tree's test fixtures are not checked in, so write a few.
printf '\x00{"zarr_format":3,"node_type":"array","shape":[10,10],"data_type":"uint8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[5,5]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"},{"name":"zstd","configuration":{"level":1}}]}' > "$corpus/meta_v3"
printf '\x00{"zarr_format":2,"shape":[10],"chunks":[5],"dtype":"<f4","compressor":{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1},"fill_value":"NaN","order":"F","filters":null}' > "$corpus/meta_v2"
printf '\x01' > "$corpus/shard"; head -c 4100 /dev/zero | tr '\0' '\377' >> "$corpus/shard"
export ASAN_OPTIONS=detect_leaks=0
"$build/tests/fuzz/store_fuzz" -max_total_time="$seconds" -max_len=20000 -print_final_stats=1 "$corpus" 2>&1 | tail -15
echo "fuzz smoke: no crash in ${seconds}s"
