#!/usr/bin/env python3
"""Random unaligned region reads: ours vs tensorstore vs zarr-python 3, same files, one process.

    python benchmarks/region_read.py --build build [--size 16384] [--regions 60] [--rounds 3]

Generates (once) a 16384² uint8 sharded section with realistic content and picks random
unaligned 2048² regions from a seed. For each thread count and decoded-chunk cache budget
(the same budget for ours and tensorstore's cache_pool), every reader first reads other
regions of the same distribution (warm page cache and index caches, not the timed chunks),
then the readers take turns region by region, the order rotating so none always goes first,
for --rounds passes. Every region every reader returns is compared with ours. Prints MB/s,
p50/p99 latency, the ratios with the min–max over rounds, and the decode-only bound:
decompressing the same blosc blocks ours decodes (C++, region_read_bench, bytes already in
memory, no store around them).
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
from patch_bench_common import import_cytonet


def latency_stats(latencies, region_bytes):
    lat = np.asarray(latencies)
    return {"mb_per_s": region_bytes / lat.mean() / 1e6, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3), "n": len(lat)}


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


def ours_reader(cytonet, path, cache_mb):
    array = cytonet.open_array(str(path.parent), path.name, cache_mb=cache_mb)
    return lambda y, x, s: array.read((y, x), (s, s))


def run_config(readers, origins, warmup, side, rounds, zarr_regions):
    """Times every reader on every region, interleaved; returns {name: [[seconds per region] per round]}."""
    for read in readers.values():
        for y, x in warmup:
            read(y, x, side)
    names = list(readers)
    times = {name: [[] for _ in range(rounds)] for name in names}
    for r in range(rounds):
        for i, (y, x) in enumerate(origins):
            turn = names[(i + r) % len(names):] + names[: (i + r) % len(names)]
            results = {}
            for name in turn:
                if name == "zarr_python" and i >= zarr_regions:
                    continue
                t0 = time.perf_counter()
                results[name] = np.asarray(readers[name](y, x, side))
                times[name][r].append(time.perf_counter() - t0)
            for name, pixels in results.items():
                if not np.array_equal(pixels, results["ours"]):
                    sys.exit(f"region {i} at ({y}, {x}): {name} differs from ours")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--data", default=None, help="where the generated array lives (default BUILD/bench-data)")
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--region", type=int, default=2048)
    parser.add_argument("--regions", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zarr-regions", type=int, default=10, help="zarr-python is slow: only the first N regions")
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
    cytonet = import_cytonet(build)

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
    print(f"{args.regions} random unaligned {args.region}² regions × {args.rounds} rounds, readers interleaved "
          f"(zarr-python: first {args.zarr_regions}); every region compared with ours\n")

    results = []
    for cache_mb in args.cache_mb:
        for threads in args.threads:
            cytonet.set_threads(threads)
            readers = {"ours": ours_reader(cytonet, root / "section", cache_mb),
                       "tensorstore": tensorstore_reader(root / "section", threads, cache_mb << 20),
                       "zarr_python": zarr_reader(root / "section", threads)}
            times = run_config(readers, origins, warmup, args.region, args.rounds, args.zarr_regions)
            bound_file = root / f"bound-{threads}-{cache_mb}.json"
            subprocess.run([bench, "read", root, regions_file, "--threads", str(threads),
                            "--chunk-cache-mb", str(cache_mb), "--out", bound_file], check=True)
            bound = json.loads(bound_file.read_text())["decode_only"]
            row = {"threads": threads, "cache_mb": cache_mb, "pixels_identical": True,
                   "decode_only_bound": latency_stats(bound, region_bytes)}
            for name, per_round in times.items():
                row[name] = latency_stats(sum(per_round, []), region_bytes)
                row[name]["rounds"] = [latency_stats(t, region_bytes) for t in per_round]
            for peer in ("tensorstore", "zarr_python"):
                ratios = [o["mb_per_s"] / p["mb_per_s"] for o, p in zip(row["ours"]["rounds"], row[peer]["rounds"])]
                row[f"ratio_vs_{peer}"] = {"all": row["ours"]["mb_per_s"] / row[peer]["mb_per_s"],
                                           "min": min(ratios), "max": max(ratios)}
            p50 = [p["p50_ms"] / o["p50_ms"] for o, p in zip(row["ours"]["rounds"], row["tensorstore"]["rounds"])]
            p99 = [p["p99_ms"] / o["p99_ms"] for o, p in zip(row["ours"]["rounds"], row["tensorstore"]["rounds"])]
            row["latency_ratio_vs_tensorstore"] = {"p50_min": min(p50), "p50_max": max(p50),
                                                   "p99_min": min(p99), "p99_max": max(p99)}
            results.append(row)
            print(f"threads={threads}, decoded-chunk cache {cache_mb} MiB (ours and tensorstore); pixels identical")
            print(f"  {'reader':<20}{'MB/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
            for name in ("ours", "tensorstore", "zarr_python", "decode_only_bound"):
                s = row[name]
                print(f"  {name:<20}{s['mb_per_s']:9.0f}{s['p50_ms']:9.2f}{s['p99_ms']:9.2f}")
            ts_ratio, zarr_ratio = row["ratio_vs_tensorstore"], row["ratio_vs_zarr_python"]
            print(f"  ours / tensorstore = {ts_ratio['all']:.2f}x (rounds {ts_ratio['min']:.2f}–{ts_ratio['max']:.2f}); "
                  f"p50 {min(p50):.2f}–{max(p50):.2f}x, p99 {min(p99):.2f}–{max(p99):.2f}x")
            print(f"  ours / zarr-python = {zarr_ratio['all']:.2f}x (rounds {zarr_ratio['min']:.2f}–{zarr_ratio['max']:.2f}); "
                  f"ours / decode-only bound = {100 * row['ours']['mb_per_s'] / row['decode_only_bound']['mb_per_s']:.0f}%\n")
            sys.stdout.flush()
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
