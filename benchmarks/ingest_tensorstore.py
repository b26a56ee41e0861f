"""The tensorstore peer of `cytonet ingest` for benchmarks/ingest_bench.py: reads a tiled
BigTIFF with tifffile, builds the same 2×2 area-mean pyramid with numpy and writes the same
sharded Zarr v3 levels with tensorstore, band by band (one shard row at a time, so every
shard is written once), in bounded memory.

    python ingest_tensorstore.py IN.tif OUT_DIR --threads T --codec zstd --clevel 1
"""
import argparse
import json
import pathlib

import numpy as np
import tensorstore as ts
import tifffile
import zarr


def downsample(a: np.ndarray) -> np.ndarray:
    """Mean of the in-image pixels of each 2×2 block, rounded half up (ingest/downsample.h)."""
    h, w = a.shape
    total = np.zeros(((h + 1) // 2, (w + 1) // 2), np.uint16)
    count = np.zeros(total.shape, np.uint16)
    for dy in (0, 1):
        for dx in (0, 1):
            part = a[dy::2, dx::2]
            total[: part.shape[0], : part.shape[1]] += part
            count[: part.shape[0], : part.shape[1]] += 1
    return ((2 * total + count) // (2 * count)).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--codec", default="zstd", choices=["zstd", "blosc"])
    parser.add_argument("--cname", default="lz4", help="with --codec blosc")
    parser.add_argument("--clevel", type=int, default=1)
    args = parser.parse_args()

    source = zarr.open(tifffile.imread(args.input, aszarr=True, level=0, maxworkers=args.threads), mode="r")
    height, width = source.shape
    shapes = [(height, width)]
    while len(shapes) < 2 or max(shapes[-1]) > args.shard:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    context = ts.Context({"data_copy_concurrency": {"limit": args.threads},
                          "file_io_concurrency": {"limit": max(2, args.threads)}})
    compressor = ({"name": "zstd", "configuration": {"level": args.clevel, "checksum": False}} if args.codec == "zstd"
                  else {"name": "blosc", "configuration": {"cname": args.cname, "clevel": args.clevel,
                                                           "shuffle": "noshuffle", "typesize": 1, "blocksize": 0}})
    codecs = [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [args.chunk, args.chunk],
        "codecs": [{"name": "bytes"}, compressor],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "index_location": "end"}}]
    levels = []
    for k, shape in enumerate(shapes):
        levels.append(ts.open({
            "driver": "zarr3", "kvstore": {"driver": "file", "path": str(pathlib.Path(args.output) / str(k))},
            "metadata": {"shape": list(shape), "data_type": "uint8", "fill_value": 255,
                         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [args.shard, args.shard]}},
                         "codecs": codecs, "dimension_names": ["y", "x"]}},
            create=True, delete_existing=True, context=context).result())

    # pending[k]: rows of level k not yet written (less than one shard row).
    pending = [np.empty((0, s[1]), np.uint8) for s in shapes]
    written = [0] * len(shapes)

    def feed(k: int, rows: np.ndarray) -> None:
        pending[k] = np.concatenate([pending[k], rows]) if pending[k].size else rows
        while len(pending[k]) >= args.shard or (pending[k].size and written[k] + len(pending[k]) == shapes[k][0]):
            band = pending[k][: args.shard]
            pending[k] = pending[k][len(band):]
            levels[k][written[k]: written[k] + len(band), :].write(band).result()
            written[k] += len(band)
            if k + 1 < len(shapes):
                feed(k + 1, downsample(band))

    for y in range(0, height, args.shard):
        feed(0, np.asarray(source[y: y + args.shard, :]))
    assert written == [s[0] for s in shapes], (written, shapes)
    print(json.dumps({"levels": [list(s) for s in shapes]}))


if __name__ == "__main__":
    main()
