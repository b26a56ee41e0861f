"""Random-access patch latency: cytonet.read vs tensorstore's Python read of the same
regions, in one run, the same number of decode threads (--threads), no chunk cache for
either (the defaults).

    python benchmarks/random_access.py --build build --dataset build/main-job/dataset --size 2048 --level 1

Points are index rows whose patch lies inside the image (tensorstore does not pad).
Prints p50/p99 latency in ms and the ratio; --out writes the numbers as JSON.
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
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="decode threads for both tools")
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
        x0, y0 = int(round(cx - half)), int(round(cy - half))
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
        assert np.array_equal(ours(region), peer(region)), "ours and tensorstore disagree"
    times = {"ours": [], "tensorstore": []}
    for region in regions[10:]:  # interleaved, so both see the same machine state
        for name, read in (("ours", ours), ("tensorstore", peer)):
            start = time.perf_counter()
            read(region)
            times[name].append(time.perf_counter() - start)
    result = {name: percentiles(t) for name, t in times.items()}
    result["ratio_p50"] = result["tensorstore"]["p50_ms"] / result["ours"]["p50_ms"]
    result["ratio_p99"] = result["tensorstore"]["p99_ms"] / result["ours"]["p99_ms"]
    print(f"{args.reads} random {args.size}² patches at level {args.level}, {args.threads} thread(s), no cache")
    for name in ("ours", "tensorstore"):
        print(f"  {name:<12} p50 {result[name]['p50_ms']:7.2f} ms   p99 {result[name]['p99_ms']:7.2f} ms")
    print(f"  tensorstore / ours: p50 {result['ratio_p50']:.2f}×, p99 {result['ratio_p99']:.2f}×")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
