#!/usr/bin/env python3
"""Random unaligned region reads: ours vs tensorstore vs zarr-python 3, same files, one run.

    python benchmarks/region_read.py --build build [--size 16384] [--regions 100]

Generates (once) a ≥16384² uint8 sharded section with realistic content, picks random
unaligned 2048² regions from a seed, reads them with each implementation at 1 and 2
threads after a warm-up pass over other regions (warm page cache and index caches), and prints MB/s of decoded region bytes,
p50/p99 latency and the ratios. Also prints the decode-only bound (decompressing just the
inner chunks each region needs, from memory). Results go to --out as JSON too.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import tensorstore as ts
import zarr


def stats(latencies, region_bytes):
    lat = np.asarray(latencies)
    return {"mb_per_s": region_bytes / lat.mean() / 1e6, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3), "n": len(lat)}


def time_reads(read, origins, warmup, side):
    for y, x in warmup:  # other regions: warm page cache and index caches, not the timed chunks
        read(y, x, side)
    latencies = []
    for y, x in origins:
        t0 = time.perf_counter()
        read(y, x, side)
        latencies.append(time.perf_counter() - t0)
    return latencies


def tensorstore_reader(path, threads, cache_bytes):
    context = ts.Context({"cache_pool": {"total_bytes_limit": cache_bytes},
                          "data_copy_concurrency": {"limit": threads},
                          "file_io_concurrency": {"limit": threads}})
    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)},
                     "recheck_cached_data": False, "recheck_cached_metadata": False},
                    context=context, read=True).result()
    return lambda y, x, s: store[y : y + s, x : x + s].read().result()


def zarr_reader(path, threads):
    zarr.config.set({"threading.max_workers": threads, "async.concurrency": max(threads, 1)})
    array = zarr.open_array(str(path), mode="r")
    return lambda y, x, s: array[y : y + s, x : x + s]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--data", default=None, help="where the generated array lives (default BUILD/bench-data)")
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--region", type=int, default=2048)
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--zarr-regions", type=int, default=30, help="zarr-python is slow; fewer of the same regions")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cname", default="lz4")
    parser.add_argument("--shuffle", default="noshuffle")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--cache-mb", type=int, nargs="+", default=[0, 64],
                        help="decoded-chunk cache budgets to run, the same for ours and tensorstore "
                             "(its cache_pool); 0 still lets tensorstore cache nothing and us only indexes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    build = pathlib.Path(args.build).resolve()
    bench = build / "benchmarks" / "region_read_bench"
    root = pathlib.Path(args.data or build / "bench-data" / f"section-{args.size}-{args.cname}-{args.shuffle}")
    subprocess.run([bench, "generate", root, "--size", str(args.size), "--cname", args.cname,
                    "--shuffle", args.shuffle], check=True)
    rng = np.random.default_rng(args.seed)
    origins = rng.integers(0, args.size - args.region, size=(args.regions, 2)).tolist()
    warmup = rng.integers(0, args.size - args.region, size=(args.regions, 2)).tolist()
    regions_file = root / "regions.json"
    regions_file.write_text(json.dumps({"size": args.region, "origins": origins, "warmup": warmup}))
    region_bytes = args.region * args.region
    stored = sum(p.stat().st_size for p in (root / "section").rglob("*") if p.is_file())
    print(f"array {args.size}² uint8, shards 8192², inner 512², blosc {args.cname}/{args.shuffle}: "
          f"{stored / 1e6:.0f} MB stored, {args.size**2 / 1e6:.0f} MB decoded")
    print(f"{args.regions} random unaligned {args.region}² regions (zarr-python: first {args.zarr_regions})\n")

    results = []
    for cache_mb in args.cache_mb:
        for threads in args.threads:
            out = root / f"ours-{threads}-{cache_mb}.json"
            subprocess.run([bench, "read", root, regions_file, "--threads", str(threads),
                            "--chunk-cache-mb", str(cache_mb), "--out", out], check=True)
            ours = json.loads(out.read_text())
            first = np.fromfile(str(out) + ".first.raw", dtype=np.uint8).reshape(args.region, args.region)
            ts_read = tensorstore_reader(root / "section", threads, cache_mb << 20)
            zarr_read = zarr_reader(root / "section", threads)
            y, x = origins[0]
            np.testing.assert_array_equal(np.asarray(ts_read(y, x, args.region)), first)
            np.testing.assert_array_equal(np.asarray(zarr_read(y, x, args.region)), first)
            row = {
                "threads": threads, "cache_mb": cache_mb,
                "ours": stats(ours["ours"], region_bytes),
                "decode_only_bound": stats(ours["decode_only"], region_bytes),
                "tensorstore": stats(time_reads(ts_read, origins, warmup, args.region), region_bytes),
                "zarr_python": stats(time_reads(zarr_read, origins[: args.zarr_regions],
                                                warmup[: args.zarr_regions], args.region), region_bytes),
            }
            row["ratio_vs_tensorstore"] = row["ours"]["mb_per_s"] / row["tensorstore"]["mb_per_s"]
            row["ratio_vs_zarr_python"] = row["ours"]["mb_per_s"] / row["zarr_python"]["mb_per_s"]
            row["fraction_of_decode_bound"] = row["ours"]["mb_per_s"] / row["decode_only_bound"]["mb_per_s"]
            results.append(row)
            print(f"threads={threads}, decoded-chunk cache {cache_mb} MiB (ours and tensorstore)")
            print(f"  {'reader':<20}{'MB/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
            for name in ("ours", "tensorstore", "zarr_python", "decode_only_bound"):
                s = row[name]
                print(f"  {name:<20}{s['mb_per_s']:9.0f}{s['p50_ms']:9.1f}{s['p99_ms']:9.1f}")
            print(f"  ours / tensorstore = {row['ratio_vs_tensorstore']:.2f}x   ours / zarr-python = "
                  f"{row['ratio_vs_zarr_python']:.2f}x   ours / decode-only bound = "
                  f"{100 * row['fraction_of_decode_bound']:.0f}%\n")
            sys.stdout.flush()
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
