"""Training-loader throughput: the cytonet loader with T threads vs a PyTorch DataLoader
with T worker processes that reads with tensorstore and augments with OpenCV-Python, doing
the same work, checked pixel by pixel; plus the cytonet loader without augmentation (plain
crops) as a read-only bound.

    python benchmarks/loader_bench.py --build build --dataset DATASET --size 2048 --level 1 --threads 1 2

Same work. Our loader is run first, untimed, to record every batch the timed windows will
take: its index rows and augmentation parameters (all batches), and, just before each
round, its output images for that round's timed batches. The peer's Dataset gets that
"plan", one (row, parameters) pair per sample in the order the DataLoader asks for them,
and applies exactly those parameters the way loader/patch_reader.cc does:
  - centre at level k: (x_px + 0.5) / 2^k − 0.5, plus the shift shift_mm · 1000 / (the
    level's pixel size in µm, from the section's OME `scale`) along shift_direction;
  - A = R(θ)·diag(1, ±1) (mirror flips rows), output (u, v) samples c + A·(u − h, v − h),
    h = (size − 1)/2; the source box from the rotated corners plus one pixel, read with the
    array's fill value outside the image; one cv2.warpAffine (INTER_LINEAR |
    WARP_INVERSE_MAP, BORDER_CONSTANT = fill); a plain crop (CentredBox) when θ = 0, no
    mirror and no shift;
  - the table round(clamp(α·(v/255)^γ + β, 0, 1) · 255) (C lround) by cv2.LUT;
  - cv2.GaussianBlur(σ, BORDER_REFLECT_101) for 'blur'; for 'sharpen'
    cv2.addWeighted(x, 1 + δ, G_σ(x), −δ, 0) = x + δ(x − G_σ(x)).
Not in the augmentation dicts, so read from the dataset: the pixel size of the level and
the fill value (the level's zarr.json). Each peer worker opens every section's array when
it starts (worker_init_fn), as ours has its sections open before it is timed.

Checked, two ways.
  1. Every patch of the peer's timed batches is compared with ours for the same sample
     (rows and parameters asserted equal first): max |Δ|, mean |Δ|, the fraction of pixels
     off by more than 2 grey levels, overall and per filter. The run fails (exit status 1,
     after the JSON is written) when mean |Δ| > --max-mean-diff (default 0.25) or more
     than --max-over2 (default 0.01) of the pixels differ by more than 2 levels.
  2. Exact: after the rounds, --exact-patches (default 16) samples go through the peer's
     own code with cv2.warpAffine swapped for a NumPy port of OpenCV 4.6's fixed-point
     bilinear (warp_fixed_point, what loader/warp.cc is bit-identical to); every one must
     equal ours byte for byte, or the run fails. This pins every formula above; the
     tolerance in 1 only has to cover the warp implementations.
Why a tolerance at all: PyPI's OpenCV 5.0 warpAffine (the peer's) does not interpolate as
OpenCV 4.6 does (Debian's, ours): on random noise 60 % of its pixels differ from 4.6's,
by up to 6. Its GaussianBlur (with ALGO_HINT_ACCURATE, asked for explicitly), LUT and
addWeighted match. Measured on the tiny phantom (2 sections of 4096 × 3072 px, 256²
patches at level 1, batch 8, 3 rounds of 4 batches, 96 patches): no patch identical, max
|Δ| 7, mean |Δ| 0.076, 0.11 % of the pixels off by more than 2 (blur: max 3, mean 0.052;
none: max 3, mean 0.071; sharpen, which amplifies the warp's differences by up to 1 + δ:
max 7, mean 0.12, 0.54 % > 2); the exact check: 16 of 16 identical. A wrong formula shows:
centre without the half-pixel convention mean |Δ| 1.9 (20 % > 2), shift scaled by 1/1.1
mean 6.9, gamma table scaled by 254.5/255 mean 0.55, sharpen weight −0.8·δ mean 3.8. A
centre 0.02 px off passes the tolerance (mean 0.13) but not the exact check (0 of 48
identical). (np.rint for lround, or (a0 + a1)·h in the matrix, changed no pixel there.)

Timing. Interleaved rounds (--rounds, ≥ 3, default 5): in each, every loader in turn takes
the batches it had prefetched (untimed) and is then timed over --batches batches (default
12, i.e. 96 patches of batch 8) while the others sit idle with full prefetch queues; the
order of the loaders is reversed every other round. Both prefetch 2·T batches (our ring,
the DataLoader's prefetch_factor 2 per worker). Printed per loader: median and min–max of
the rounds; the ratio ours / peer per round, its median and min–max.

Work only. In the T = 1 pass the peer's per-patch work alone, its Dataset's __getitem__
(tensorstore read + cv2 augmentation) called in this process (no DataLoader, no worker
IPC, no collation), is timed single-threaded over the same samples as the peer's timed
batches, as one more interleaved window; printed as ours at T = 1 / peer work-only. The
T = 1 pass runs last (whatever the order of --threads) because that opens tensorstore in
this process, and DataLoader workers forked after that would inherit its thread pools.

All numbers, per round, go to --out as JSON.
"""
import json
import math
import os
import pathlib
import statistics
import sys
import time

import cv2
import numpy as np
import tensorstore as ts
from patch_bench_common import import_cytonet, patch_parser
import torch
from torch.utils.data import DataLoader, Dataset

SEED = 3
OURS, PLAIN, PEER, WORK = ("cytonet (augmented)", "cytonet plain crops (bound)", "DataLoader + tensorstore + cv2",
                           "peer work only (no DataLoader)")
BLUR_HINT = {"hint": cv2.ALGO_HINT_ACCURATE} if hasattr(cv2, "ALGO_HINT_ACCURATE") else {}


def section_levels(dataset, brain, section, level):
    """(array path, pixel size in µm, fill value) of a level, as the loader reads them: the
    OME multiscales entry `level` (its path and the last `scale` value) and the array's fill."""
    group = pathlib.Path(dataset) / "sections" / brain / section
    attributes = json.loads((group / "zarr.json").read_text())["attributes"]
    entry = attributes["ome"]["multiscales"][0]["datasets"][level]
    scale = next(t["scale"] for t in entry["coordinateTransformations"] if t["type"] == "scale")
    fill = json.loads((group / entry["path"] / "zarr.json").read_text())["fill_value"]
    return str(group / entry["path"]), float(scale[-1]), int(fill)


def lround(x):
    """C's lround (half away from zero) for x ≥ 0; np.rint would round half to even."""
    f = np.floor(x)
    return f + ((x - f) >= 0.5)


def intensity_table(p):
    if p["alpha"] == 1 and p["beta"] == 0 and p["gamma"] == 1:
        return None
    x = p["alpha"] * np.power(np.arange(256) / 255.0, p["gamma"]) + p["beta"]
    return lround(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def warp_fixed_point(source, matrix, dsize, flags=None, borderMode=None, borderValue=255):
    """OpenCV 4.6's 8-bit bilinear warpAffine (WARP_INVERSE_MAP, BORDER_CONSTANT) in NumPy,
    the arithmetic loader/warp.cc reproduces bit for bit: per column and per row a map term
    in 1/1024 px rounded half to even, their sum + 16 shifted to 1/32 px, 5-bit weights;
    taps outside the source read the fill, pixels wholly outside are the fill. For the exact
    check only (slow); PyPI's OpenCV 5.0 interpolates differently."""
    size, fill = dsize[0], int(borderValue)
    m = np.asarray(matrix, np.float64)
    height, width = source.shape
    padded = np.full((height + 2, width + 2), fill, np.int32)
    padded[1:-1, 1:-1] = source
    u = np.arange(size)
    column_x, column_y = np.rint(m[0, 0] * u * 1024).astype(np.int64), np.rint(m[1, 0] * u * 1024).astype(np.int64)
    out = np.empty((size, size), np.uint8)
    for v0 in range(0, size, 128):  # strips bound the memory
        v = np.arange(v0, min(size, v0 + 128))[:, None]
        x = (np.rint((m[0, 1] * v + m[0, 2]) * 1024).astype(np.int64) + 16 + column_x) >> 5
        y = (np.rint((m[1, 1] * v + m[1, 2]) * 1024).astype(np.int64) + 16 + column_y) >> 5
        sx, sy, fx, fy = x >> 5, y >> 5, x & 31, y & 31
        outside = (sx >= width) | (sx < -1) | (sy >= height) | (sy < -1)
        px, py = np.clip(sx, -1, width - 1) + 1, np.clip(sy, -1, height - 1) + 1
        top = padded[py, px] * (32 - fx) + padded[py, px + 1] * fx
        bottom = padded[py + 1, px] * (32 - fx) + padded[py + 1, px + 1] * fx
        out[v0:v0 + len(v)] = np.where(outside, fill, (top * (32 - fy) + bottom * fy + 512) >> 10)
    return out


class PlannedPatches(Dataset):
    """Sample i is plan[i] = (index row, augmentation dict of our loader), augmented as
    loader/patch_reader.cc does; tensorstore arrays opened once per process."""

    def __init__(self, plan, sections, levels, xs, ys, size, level, warp=cv2.warpAffine):
        self.plan, self.sections, self.levels = plan, sections, levels
        self.xs, self.ys, self.size, self.level = xs, ys, size, level
        self.warp, self.arrays = warp, None

    def __len__(self):
        return len(self.plan)

    def open_all(self):
        """Opens every section's array now (ours has them open before it is timed too)."""
        for key in self.levels:
            self._array(key)

    def _array(self, key):
        if self.arrays is None:
            self.arrays = {}
        if key not in self.arrays:
            context = ts.Context({"data_copy_concurrency": {"limit": 1}})
            self.arrays[key] = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": self.levels[key][0]}},
                                       context=context).result()
        return self.arrays[key]

    @staticmethod
    def _read_box(array, y0, x0, h, w, fill):
        height, width = array.shape
        if y0 >= 0 and x0 >= 0 and y0 + h <= height and x0 + w <= width:
            return array[y0:y0 + h, x0:x0 + w].read().result()
        box = np.full((h, w), fill, np.uint8)  # outside the image: the fill value, as ours
        ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
        if ys.start < ys.stop and xs.start < xs.stop:
            box[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = array[ys, xs].read().result()
        return box

    def __getitem__(self, i):
        row, p = self.plan[i]
        key = self.sections[row]
        _, pixel_um, fill = self.levels[key]
        array = self._array(key)
        size = self.size
        scale = float(1 << self.level)
        shift_px = p["shift_mm"] * 1000 / pixel_um
        cx = (self.xs[row] + 0.5) / scale - 0.5 + shift_px * math.cos(p["shift_direction"])
        cy = (self.ys[row] + 0.5) / scale - 0.5 + shift_px * math.sin(p["shift_direction"])
        h = (size - 1) / 2
        table = intensity_table(p)
        if p["theta"] == 0 and not p["mirror"] and p["shift_mm"] == 0:  # plain crop (dataset/layout.cc CentredBox)
            patch = self._read_box(array, math.floor(cy - h + 0.5), math.floor(cx - h + 0.5), size, size, fill)
            if table is not None:
                patch = cv2.LUT(patch, table)
        else:
            cos_t, sin_t, m = math.cos(p["theta"]), math.sin(p["theta"]), -1.0 if p["mirror"] else 1.0
            a = (cos_t, -sin_t * m, sin_t, cos_t * m)
            reach_x, reach_y = h * (abs(a[0]) + abs(a[1])), h * (abs(a[2]) + abs(a[3]))
            x0, y0 = math.floor(cx - reach_x) - 1, math.floor(cy - reach_y) - 1
            x1, y1 = math.ceil(cx + reach_x) + 2, math.ceil(cy + reach_y) + 2
            source = self._read_box(array, y0, x0, y1 - y0, x1 - x0, fill)
            # The same operations in the same order as ours, so the doubles are the same.
            matrix = np.array([[a[0], a[1], cx - x0 - a[0] * h - a[1] * h],
                               [a[2], a[3], cy - y0 - a[2] * h - a[3] * h]])
            patch = self.warp(source, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
            if table is not None:
                patch = cv2.LUT(patch, table)
        if p["filter"] != "none":
            blurred = cv2.GaussianBlur(patch, (0, 0), p["sigma"], sigmaY=p["sigma"], borderType=cv2.BORDER_REFLECT_101,
                                       **BLUR_HINT)
            patch = blurred if p["filter"] == "blur" else cv2.addWeighted(patch, 1 + p["delta"], blurred, -p["delta"], 0)
        return torch.from_numpy(patch)


class Agreement:
    """|peer − ours| over patches, overall and per filter."""

    def __init__(self):
        self.total, self.by_filter, self.worst = self._empty(), {}, None

    @staticmethod
    def _empty():
        return {"patches": 0, "identical_patches": 0, "pixels": 0, "abs_sum": 0, "over2": 0, "max": 0}

    def add(self, peer, ours, params, where):
        d = np.abs(peer.astype(np.int16) - ours.astype(np.int16))
        largest = int(d.max())
        for s in (self.total, self.by_filter.setdefault(params["filter"], self._empty())):
            s["patches"] += 1
            s["identical_patches"] += largest == 0
            s["pixels"] += d.size
            s["abs_sum"] += int(d.sum())
            s["over2"] += int((d > 2).sum())
            s["max"] = max(s["max"], largest)
        if self.worst is None or largest > self.worst["max"]:
            self.worst = dict(where, max=largest, params=params)

    @staticmethod
    def summary(s):
        n = max(s["pixels"], 1)
        return {"patches": s["patches"], "identical_patches": s["identical_patches"], "max_abs_diff": s["max"],
                "mean_abs_diff": s["abs_sum"] / n, "fraction_over2": s["over2"] / n}

    def report(self):
        return {"all": self.summary(self.total), "by_filter": {k: self.summary(v) for k, v in self.by_filter.items()},
                "worst_patch": self.worst}


def open_worker_arrays(worker_id):
    torch.utils.data.get_worker_info().dataset.open_all()


def describe(s):
    return (f"{s['patches']} patches, {s['identical_patches']} identical; max |Δ| {s['max_abs_diff']}, "
            f"mean |Δ| {s['mean_abs_diff']:.4f}, > 2 levels {100 * s['fraction_over2']:.4f} %")


def spread(values):
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = patch_parser(__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per loader per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-mean-diff", type=float, default=0.25, help="fail above this mean |peer − ours|")
    parser.add_argument("--max-over2", type=float, default=0.01,
                        help="fail when more than this fraction of pixels differs by more than 2 grey levels")
    parser.add_argument("--exact-patches", type=int, default=16,
                        help="patches re-made with OpenCV 4.6's warp arithmetic that must equal ours (0: skip)")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    cytonet = import_cytonet(args.build)

    cv2.setNumThreads(1)
    cytonet.set_threads(1)  # the loader's parallelism is its T workers
    ds = cytonet.open(args.dataset)
    index, index_sections = ds.index, ds.index_sections
    xs, ys = np.array(index["x_px"], np.float64), np.array(index["y_px"], np.float64)
    sections = [tuple(index_sections[s]) for s in index["section"]]
    levels = {key: section_levels(args.dataset, *key, args.level) for key in set(sections)}
    steps_per_epoch = ds.loader(batch_size=args.batch, patch_size=1, level=args.level, seed=SEED, threads=1,
                                ring_depth=1).steps_per_epoch

    def loader(first_batch, batches, threads, ring_depth, size=args.size, augment=True):
        epoch, step = divmod(first_batch, steps_per_epoch)
        return ds.loader(batch_size=args.batch, patch_size=size, level=args.level, seed=SEED, threads=threads,
                         ring_depth=ring_depth, augment=augment, start_epoch=epoch, start_step=step,
                         end_epoch=epoch + (step + batches) // steps_per_epoch + 2)

    def record(first_batch, batches, size, threads):
        """Our batches first_batch … + batches − 1: (rows, augmentation dicts, images or None)."""
        it, out = loader(first_batch, batches, threads, 2 * threads, size), []
        for k in range(batches):
            b = next(it)
            assert (b["epoch"], b["step"]) == divmod(first_batch + k, steps_per_epoch)
            out.append((b["rows"].tolist(), b["augmentation"], np.array(b["images"]) if size == args.size else None))
            del b
        del it
        return out

    # Passes in the order asked for, except T = 1 last (see the docstring: work-only).
    passes = [t for t in args.threads if t != 1] + [1] * (1 in args.threads)
    print(f"{args.batch} × {args.size}² patches per batch at level {args.level}; {args.rounds} interleaved rounds of "
          f"{args.batches} timed batches ({args.batch * args.batches} patches) per loader, order reversed every other "
          f"round; peer blur hint {BLUR_HINT or 'none'}", flush=True)
    output = {"config": {k: v for k, v in vars(args).items()}, "steps_per_epoch": steps_per_epoch,
              "pixel_size_um": {"/".join(k): v[1] for k, v in levels.items()}, "passes": []}
    failed = []
    for t in passes:
        prefetch = 2 * t  # both sides prefetch 2·T batches: the DataLoader's prefetch_factor 2 per worker, our ring
        per_round = prefetch + args.batches
        total = 1 + args.rounds * per_round + prefetch  # warm-up, the rounds, what is in flight at the end
        # The plan: what our loader draws, batch after batch (cheap: 1-pixel patches; the
        # rows and parameters do not depend on the patch size, and each round checks that).
        recorded = record(0, total, 1, 1)
        plan = [(row, p) for rows, aug, _ in recorded for row, p in zip(rows, aug)]
        peer_dataset = PlannedPatches(plan, sections, levels, xs, ys, args.size, args.level)
        work_only = t == passes[-1]
        names = [OURS, PLAIN, PEER] + [WORK] * work_only
        peer_loader = DataLoader(peer_dataset, batch_size=args.batch, shuffle=False, num_workers=t,
                                 persistent_workers=True, prefetch_factor=2, worker_init_fn=open_worker_arrays)
        iterators = {
            OURS: loader(0, total + prefetch, t, prefetch),
            PLAIN: loader(0, total + prefetch, t, prefetch, augment=False),
            PEER: iter(peer_loader),
        }
        for it in iterators.values():  # warm-up: opens files, starts workers, fills the prefetch
            next(it)
        if work_only:  # after the workers forked; opens tensorstore in this process
            work_dataset = PlannedPatches(plan, sections, levels, xs, ys, args.size, args.level)
            work_dataset.open_all()
            work_dataset[0]
        time.sleep(2)
        rates = {name: [] for name in names}
        agreement, work_mismatches = Agreement(), 0
        for r in range(args.rounds):
            first_timed = 1 + r * per_round + prefetch
            ours_images = record(first_timed, args.batches, args.size, os.cpu_count() or 1)  # untimed
            for k, (rows, aug, _) in enumerate(ours_images):
                got = plan[(first_timed + k) * args.batch:(first_timed + k + 1) * args.batch]
                assert [(row, p) for row, p in zip(rows, aug)] == got, "our loader drew other rows or parameters"
            time.sleep(0.5)
            peer_batches, work_patches = [], []
            for name in (names if r % 2 == 0 else names[::-1]):
                if name == WORK:
                    first = first_timed * args.batch
                    start = time.perf_counter()
                    for i in range(first, first + args.batches * args.batch):
                        work_patches.append(work_dataset[i])
                    elapsed = time.perf_counter() - start
                    rates[name].append(args.batch * args.batches / elapsed)
                    time.sleep(0.2)
                    continue
                it = iterators[name]
                for _ in range(prefetch):  # ready before the window opened
                    next(it)
                start = time.perf_counter()
                for _ in range(args.batches):
                    b = next(it)
                    if name == PEER:
                        peer_batches.append(b)
                    del b
                elapsed = time.perf_counter() - start
                rates[name].append(args.batch * args.batches / elapsed)
                time.sleep(1.5 * prefetch * elapsed / args.batches + 0.2)  # let it refill its prefetch
            for k, (peer, (rows, aug, images)) in enumerate(zip(peer_batches, ours_images)):
                for j in range(args.batch):
                    where = {"threads": t, "round": r, "batch": first_timed + k, "sample": j, "row": rows[j]}
                    agreement.add(peer[j].numpy(), images[j], aug[j], where)
            if work_only:
                work_mismatches += sum(not torch.equal(w, peer_batches[i // args.batch][i % args.batch])
                                       for i, w in enumerate(work_patches))
            del peer_batches, work_patches, ours_images
        if work_only and args.exact_patches:  # untimed: the formulas, with OpenCV 4.6's warp arithmetic
            first = 1 + prefetch  # round 0's first timed batch
            exact = {"patches": 0, "identical": 0}
            work_dataset.warp = warp_fixed_point
            for k, (rows, aug, images) in enumerate(record(first, -(-args.exact_patches // args.batch), args.size,
                                                           os.cpu_count() or 1)):
                for j in range(min(args.batch, args.exact_patches - exact["patches"])):
                    exact["patches"] += 1
                    exact["identical"] += bool(np.array_equal(work_dataset[(first + k) * args.batch + j].numpy(),
                                                              images[j]))
            work_dataset.warp = cv2.warpAffine
            output["exact_check"] = exact
            exact_line = (f"exact check (the peer's code with OpenCV 4.6's fixed-point warp in NumPy): "
                  f"{exact['identical']} of {exact['patches']} patches bit-identical to ours")
            if exact["identical"] < exact["patches"]:
                failed.append(f"exact check: {exact['patches'] - exact['identical']} patches differ")
        ratios = {name: [o / v for o, v in zip(rates[OURS], rates[name])] for name in names}
        print(f"{'loader':<32} {'T':>2} {'patches/s':>10} {'per core':>9} {'min–max':>13} {'ours ×':>7}", flush=True)
        entry = {"threads": t, "prefetch_batches": prefetch, "loaders": {}}
        for name in names:
            values, threads = rates[name], 1 if name == WORK else t
            value, ratio = statistics.median(values), statistics.median(ratios[name])
            print(f"{name:<32} {threads:>2} {value:>10.1f} {value / threads:>9.1f} "
                  f"{f'{min(values):.1f}–{max(values):.1f}':>13} {ratio:>7.2f}", flush=True)
            entry["loaders"][name] = {"threads": threads, "patches_per_s_rounds": values, "patches_per_s": value,
                                      "per_core": value / threads, "ours_ratio_rounds": ratios[name],
                                      "ours_ratio": ratio}
        peer_ratios = ratios[PEER]
        print(f"ours / peer per round, T = {t}: {' '.join(f'{x:.2f}' for x in peer_ratios)}; median "
              f"{statistics.median(peer_ratios):.2f}, min–max {spread(peer_ratios)}", flush=True)
        if work_only:
            entry["work_only_mismatches"] = work_mismatches
            if t == 1:
                work = ratios[WORK]
                print(f"work only: ours at T = 1 / peer __getitem__ in this process (read + cv2, no DataLoader): "
                      f"median {statistics.median(work):.2f}, min–max {spread(work)} "
                      f"({statistics.median(rates[OURS]):.1f} vs {statistics.median(rates[WORK]):.1f} patches/s)",
                      flush=True)
                output["work_only"] = {"ours_t1_rounds": rates[OURS], "peer_rounds": rates[WORK],
                                       "ratio_rounds": work, "ratio": statistics.median(work)}
            else:
                print("work only: T = 1 not measured, no ratio", flush=True)
                output["work_only"] = {"peer_rounds": rates[WORK], "ratio": None}
            if work_mismatches:
                failed.append(f"T = {t}: {work_mismatches} work-only patches differ from the DataLoader's")
        report = agreement.report()
        entry["agreement"] = report
        print(f"peer vs ours, T = {t}: {describe(report['all'])}", flush=True)
        for name, s in sorted(report["by_filter"].items()):
            print(f"  filter {name:<8} {describe(s)}", flush=True)
        s = report["all"]
        if s["mean_abs_diff"] > args.max_mean_diff or s["fraction_over2"] > args.max_over2:
            failed.append(f"T = {t}: mean |Δ| {s['mean_abs_diff']:.4f} (limit {args.max_mean_diff}), > 2 levels "
                          f"{s['fraction_over2']:.5f} (limit {args.max_over2})")
        if work_only and args.exact_patches:
            print(exact_line, flush=True)
        output["passes"].append(entry)
        del iterators, peer_loader, peer_dataset
    output["failed"] = failed
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(output, indent=1))
    if failed:
        print("FAIL: the peer's patches do not match ours: " + "; ".join(failed), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
