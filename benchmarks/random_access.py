"""Random-access patch latency: cytonet.read vs tensorstore's Python read of the same
regions, in one process, the same number of decode threads (--threads), no chunk cache for
either (the defaults).

    python benchmarks/random_access.py --build build --dataset build/main-job/dataset --size 2048 --level 1

Points are index rows whose patch lies inside the image (tensorstore does not pad). Each
round reads every patch with both, back to back, the order alternating patch by patch so
neither always warms the CPU caches for the other; every pair of patches is compared.
Prints p50/p99 latency in ms per round and the ratios' min–max, then the run's ratios over
all rounds' reads pooled (a p99 of 300 reads is the 3rd-slowest read, which one hiccup of
the machine decides: use --reads 1000 or more for p99); --out writes JSON.
"""
import json
import pathlib
import sys
import time

import numpy as np
import tensorstore as ts
from patch_bench_common import import_cytonet, patch_parser


def percentiles(samples):
    return {"p50_ms": float(np.percentile(samples, 50) * 1e3), "p99_ms": float(np.percentile(samples, 99) * 1e3)}


def main() -> None:
    parser = patch_parser(__doc__)
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="decode threads for both tools")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cytonet = import_cytonet(args.build)

    cytonet.set_threads(args.threads)
    ds = cytonet.open(args.dataset)
    index = ds.index
    sections = ds.index_sections
    context = ts.Context({"data_copy_concurrency": {"limit": args.threads}, "cache_pool": {"total_bytes_limit": 0}})
    arrays = {}
    for brain, section in sections:
        path = pathlib.Path(args.dataset) / "sections" / brain / section / str(args.level)
        arrays[(brain, section)] = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}},
                                           context=context).result()
    scale, half = 2 ** args.level, (args.size - 1) / 2
    regions = []
    for row in np.random.default_rng(0).permutation(len(index["x_px"])):
        key = sections[index["section"][row]]
        cx = (index["x_px"][row] + 0.5) / scale - 0.5
        cy = (index["y_px"][row] + 0.5) / scale - 0.5
        x0, y0 = int(np.floor(cx - half + 0.5)), int(np.floor(cy - half + 0.5))  # as CentredBox rounds
        height, width = arrays[key].shape
        if x0 >= 0 and y0 >= 0 and x0 + args.size <= width and y0 + args.size <= height:
            regions.append((key, float(index["x_px"][row]), float(index["y_px"][row]), y0, x0))
        if len(regions) == args.reads + 10:
            break
    if len(regions) < args.reads + 10:
        sys.exit(f"only {len(regions)} patches of {args.size}² fit inside the images at level {args.level}")

    def ours(region):
        (brain, section), x, y, _, _ = region
        return ds.read(brain, section, level=args.level, centre=(x, y), size=args.size)

    def peer(region):
        key, _, _, y0, x0 = region
        return arrays[key][y0:y0 + args.size, x0:x0 + args.size].read().result()

    for region in regions[:10]:  # warm-up: open files, first index reads
        ours(region), peer(region)
    readers = {"ours": ours, "tensorstore": peer}
    rounds = []
    pooled = {name: [] for name in readers}
    for r in range(args.rounds):
        times = {name: [] for name in readers}
        for i, region in enumerate(regions[10:]):
            order = ("ours", "tensorstore") if (i + r) % 2 == 0 else ("tensorstore", "ours")
            pixels = {}
            for name in order:
                start = time.perf_counter()
                pixels[name] = np.asarray(readers[name](region))
                times[name].append(time.perf_counter() - start)
            if not np.array_equal(pixels["ours"], pixels["tensorstore"]):
                sys.exit(f"patch {i} of {region[0]}: ours and tensorstore disagree")
        for name, t in times.items():
            pooled[name] += t
        row = {name: percentiles(t) for name, t in times.items()}
        row["ratio_p50"] = row["tensorstore"]["p50_ms"] / row["ours"]["p50_ms"]
        row["ratio_p99"] = row["tensorstore"]["p99_ms"] / row["ours"]["p99_ms"]
        rounds.append(row)
    result = {"threads": args.threads, "rounds": rounds, "pixels_identical": True,
              "pooled": {name: percentiles(t) for name, t in pooled.items()}}
    for p in ("p50", "p99"):
        result["pooled"][f"ratio_{p}"] = result["pooled"]["tensorstore"][f"{p}_ms"] / result["pooled"]["ours"][f"{p}_ms"]
    for key in ("ratio_p50", "ratio_p99"):
        result[key] = {"min": min(r[key] for r in rounds), "max": max(r[key] for r in rounds)}
    print(f"{args.reads} random {args.size}² patches at level {args.level}, {args.threads} thread(s), no cache, "
          f"{args.rounds} rounds, order alternating; every patch identical")
    for r, row in enumerate(rounds):
        print(f"  round {r + 1}: " + "   ".join(f"{name} p50 {row[name]['p50_ms']:6.2f} ms p99 {row[name]['p99_ms']:6.2f} ms"
                                                for name in readers))
    print(f"  tensorstore / ours: p50 {result['ratio_p50']['min']:.2f}–{result['ratio_p50']['max']:.2f}×, "
          f"p99 {result['ratio_p99']['min']:.2f}–{result['ratio_p99']['max']:.2f}× over the rounds; "
          f"all {args.rounds * args.reads} reads pooled: p50 {result['pooled']['ratio_p50']:.2f}×, "
          f"p99 {result['pooled']['ratio_p99']:.2f}×")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
