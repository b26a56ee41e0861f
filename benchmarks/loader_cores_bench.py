"""Loader CPU cores per GPU: patches/s per loader core when the loader augments on the CPU
(read, warp, intensity, filter) against when it only reads the source boxes and leaves the
augmentation to the GPU (`augment_on_device`, train/device_augmentation.h), and what that
means for the paper's run: 64 GPUs at 23 patches/s each.

    python benchmarks/loader_cores_bench.py --build build --dataset DATASET [--rounds 3]

Each round runs `cytonet bench-loader` with one worker thread in three modes, interleaved:
CPU augmentation, source boxes for the device, and plain crops (the read-only floor). The
same sampler, seed and patches in every mode: only where the augmentation runs differs.
That the device's patches equal the CPU loader's within the documented tolerance is
tests/train/device_augmentation_test.cc; the GPU's own time for the augmentation is not
in these numbers (measured where a GPU is lent, see docs/benchmarks.md).
"""
import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys

MODES = {
    "cpu_augmentation": [],
    "device_augmentation": ["--augment-on-device"],
    "plain_crops": ["--no-augment"],
}
PAPER_GPUS, PAPER_PATCHES_PER_GPU = 64, 23.0


def run(cli, dataset, args, extra):
    command = [str(cli), "bench-loader", str(dataset), "--size", str(args.size), "--level", str(args.level),
               "--threads", "1", "--batches", str(args.batches), "--batch-size", str(args.batch_size), *extra]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {out.stderr}")
    rate = float(re.search(r"([\d.]+) patches/s per thread", out.stdout).group(1))
    read = float(re.search(r"read ([\d.]+) ms", out.stdout).group(1))
    return rate, read


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="JSON with every round")
    args = parser.parse_args()
    cli = pathlib.Path(args.build) / "cli" / "cytonet"
    rounds = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        for mode, extra in MODES.items():
            rate, read_ms = run(cli, args.dataset, args, extra)
            rounds[mode].append({"patches_per_s_per_core": rate, "read_ms": read_ms})
            print(f"round {r + 1}: {mode:20s} {rate:7.1f} patches/s per loader core (read {read_ms:.2f} ms/patch)",
                  flush=True)
    print(f"\n{args.size}² px at level {args.level}, one loader core; the paper: {PAPER_GPUS} GPUs × "
          f"{PAPER_PATCHES_PER_GPU:g} patches/s")
    print(f"{'mode':20s} {'patches/s/core':>16s} {'cores per GPU':>14s} {'cores for 64 GPUs':>18s}")
    summary = {}
    for mode in MODES:
        rates = [x["patches_per_s_per_core"] for x in rounds[mode]]
        median = statistics.median(rates)
        cores = PAPER_PATCHES_PER_GPU / median
        summary[mode] = {"median": median, "min": min(rates), "max": max(rates), "cores_per_gpu": cores,
                         "cores_per_gpu_worst": PAPER_PATCHES_PER_GPU / min(rates)}
        print(f"{mode:20s} {median:9.1f} ({min(rates):.0f}–{max(rates):.0f}) {cores:14.3f} "
              f"{cores * PAPER_GPUS:18.1f}")
    ratios = [d["patches_per_s_per_core"] / c["patches_per_s_per_core"]
              for d, c in zip(rounds["device_augmentation"], rounds["cpu_augmentation"])]
    print(f"\ndevice / CPU augmentation, patches per loader core: {statistics.median(ratios):.2f}× "
          f"(rounds {min(ratios):.2f}–{max(ratios):.2f}×)")
    goal = summary["device_augmentation"]["cores_per_gpu_worst"]
    print(f"goal ≤ 0.1 loader core per GPU with device augmentation: {goal:.3f} in the slowest round "
          f"({'met' if goal <= 0.1 else 'NOT met'})")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"args": vars(args), "rounds": rounds, "summary": summary,
                                                      "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
