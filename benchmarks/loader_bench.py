"""Training-loader throughput: the cytonet loader with T threads vs a PyTorch DataLoader
with T worker processes that reads with tensorstore and augments with OpenCV-Python (the
same operations: rotation, shift, mirror by one bilinear warpAffine, gamma by a lookup
table, Gaussian blur or sharpening), in one run; plus the cytonet loader without
augmentation (plain crops) as a read-only bound.

    python benchmarks/loader_bench.py --build build --dataset DATASET --size 2048 --level 1 --threads 1 2

The loaders take turns (interleaved rounds, each timed after its prefetched batches are
taken and while the others are idle), so a noisy machine slows all of them alike.
"""
import json
import math
import pathlib
import statistics
import time

import cv2
import numpy as np
import tensorstore as ts
from patch_bench_common import import_cytonet, patch_parser
import torch
from torch.utils.data import DataLoader, Dataset


class TensorstorePatches(Dataset):
    """One augmented patch per index row; tensorstore arrays opened once per worker."""

    def __init__(self, dataset, rows, sections, xs, ys, size, level, seed):
        self.dataset, self.rows, self.sections = dataset, rows, sections
        self.xs, self.ys, self.size, self.level, self.seed = xs, ys, size, level, seed
        self.arrays = None

    def __len__(self):
        return len(self.rows)

    def _array(self, key):
        if self.arrays is None:
            self.arrays = {}
        if key not in self.arrays:
            path = pathlib.Path(self.dataset) / "sections" / key[0] / key[1] / str(self.level)
            context = ts.Context({"data_copy_concurrency": {"limit": 1}})
            self.arrays[key] = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}},
                                       context=context).result()
        return self.arrays[key]

    def __getitem__(self, i):
        row = self.rows[i]
        rng = np.random.default_rng([self.seed, i])
        theta, shift, direction = rng.uniform(-math.pi, math.pi), rng.uniform(0, 0.2), rng.uniform(0, 2 * math.pi)
        mirror = rng.uniform() < 0.5
        alpha, beta = rng.uniform(0.9, 1.0), rng.uniform(-0.1, 0.1)
        z = rng.uniform(-0.05, 0.05) / math.sqrt(2)
        gamma = math.log(0.5 + z) / math.log(0.5 - z)
        which = rng.uniform()
        scale = 2 ** self.level
        shift_px = shift * 1000 / scale  # 1 µm level-0 pixels
        cx = (self.xs[row] + 0.5) / scale - 0.5 + shift_px * math.cos(direction)
        cy = (self.ys[row] + 0.5) / scale - 0.5 + shift_px * math.sin(direction)
        h = (self.size - 1) / 2
        m = -1.0 if mirror else 1.0
        a = np.array([[math.cos(theta), -math.sin(theta) * m], [math.sin(theta), math.cos(theta) * m]])
        reach_x, reach_y = h * (abs(a[0, 0]) + abs(a[0, 1])), h * (abs(a[1, 0]) + abs(a[1, 1]))
        x0, y0 = int(math.floor(cx - reach_x)) - 1, int(math.floor(cy - reach_y)) - 1
        x1, y1 = int(math.ceil(cx + reach_x)) + 2, int(math.ceil(cy + reach_y)) + 2
        array = self._array(self.sections[row])
        height, width = array.shape
        source = np.full((y1 - y0, x1 - x0), 255, np.uint8)  # background outside the image
        ys, xs = slice(max(y0, 0), min(y1, height)), slice(max(x0, 0), min(x1, width))
        if ys.start < ys.stop and xs.start < xs.stop:
            source[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = array[ys, xs].read().result()
        matrix = np.array([[a[0, 0], a[0, 1], cx - x0 - (a[0, 0] + a[0, 1]) * h],
                           [a[1, 0], a[1, 1], cy - y0 - (a[1, 0] + a[1, 1]) * h]])
        patch = cv2.warpAffine(source, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        table = np.clip(np.rint((alpha * (np.arange(256) / 255.0) ** gamma + beta) * 255), 0, 255).astype(np.uint8)
        patch = cv2.LUT(patch, table)
        if which < 0.5:
            sigma = rng.uniform(0.125, 1.0)
            blurred = cv2.GaussianBlur(patch, (0, 0), sigma)
            patch = blurred if which < 0.25 else cv2.addWeighted(patch, 1 + rng.uniform(0.5, 1.5), blurred,
                                                                 -rng.uniform(0.5, 1.5), 0)
        return torch.from_numpy(patch)


def main() -> None:
    parser = patch_parser(__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per loader per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cytonet = import_cytonet(args.build)

    cv2.setNumThreads(1)
    cytonet.set_threads(1)  # the loader's parallelism is its T workers
    ds = cytonet.open(args.dataset)
    index, sections = ds.index, ds.index_sections
    rows = np.random.default_rng(1).permutation(len(index["x_px"]))
    keys = [tuple(sections[s]) for s in index["section"]]
    results = []
    print(f"{args.batch} × {args.size}² patches per batch at level {args.level}; median of {args.rounds} interleaved "
          f"rounds of {args.batches} batches", flush=True)
    print(f"{'loader':<32} {'T':>2} {'patches/s':>10} {'per core':>9} {'range':>13} {'ours ×':>7}", flush=True)
    for t in args.threads:
        # Both sides prefetch 2·T batches: the DataLoader's prefetch_factor 2 per worker, our ring.
        prefetch = 2 * t
        loaders = {
            "cytonet (augmented)": ds.loader(batch_size=args.batch, patch_size=args.size, level=args.level, seed=3,
                                             threads=t, ring_depth=prefetch),
            "cytonet plain crops (bound)": ds.loader(batch_size=args.batch, patch_size=args.size, level=args.level,
                                                     seed=3, threads=t, ring_depth=prefetch, augment=False),
            "DataLoader + tensorstore + cv2": DataLoader(
                TensorstorePatches(args.dataset, rows, keys, index["x_px"], index["y_px"], args.size, args.level, 3),
                batch_size=args.batch, num_workers=t, persistent_workers=True, prefetch_factor=2),
        }
        iterators = {name: iter(loader) for name, loader in loaders.items()}
        rates = {name: [] for name in loaders}
        for name, it in iterators.items():  # warm-up: opens files, starts workers, fills the prefetch
            next(it)
        time.sleep(2)
        for _ in range(args.rounds):
            # One loader at a time: the others sit idle with full prefetch queues.
            for name, it in iterators.items():
                for _ in range(prefetch):  # ready before the window opened
                    next(it)
                start = time.perf_counter()
                for _ in range(args.batches):
                    next(it)
                elapsed = time.perf_counter() - start
                rates[name].append(args.batch * args.batches / elapsed)
                time.sleep(1.5 * prefetch * elapsed / args.batches + 0.2)  # let it refill its prefetch
        ours = statistics.median(rates["cytonet (augmented)"])
        for name, values in rates.items():
            value = statistics.median(values)
            spread = f"{min(values):.0f}–{max(values):.0f}"
            print(f"{name:<32} {t:>2} {value:>10.1f} {value / t:>9.1f} {spread:>13} {ours / value:>7.2f}", flush=True)
            results.append({"loader": name, "threads": t, "patches_per_s": value, "per_core": value / t,
                            "rounds": values, "ours_ratio": ours / value})
        del iterators, loaders
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
