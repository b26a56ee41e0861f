"""Ingest benchmark: one phantom section as tiled BigTIFF (deflate tiles of 512²) turned
into a pyramid by three tools in one run, same input, same compression family (zstd):

  ours         cytonet ingest (zstd inner chunks, sharded Zarr v3 + OME-Zarr)
  vips         vips tiffsave --tile --pyramid --compression zstd (a pyramidal TIFF)
  tifffile+ts  benchmarks/ingest_tensorstore.py: tifffile reads the TIFF, numpy makes the
               levels, tensorstore writes the same sharded Zarr v3 levels as ours (most of its
               time is tifffile and numpy, so it is named for all three)

For T threads each: wall time, MB/s of input pixels, MB/s per core (÷ T), MB per CPU-second
(user + system time: every tool runs helper threads beyond T, so this is the honest
per-core figure) and peak RSS, with ratios against ours. Each tool runs in its own process
under GNU time. --rounds rounds (default 3) per thread count, the tools' order rotating from
round to round; medians are printed, and ours' wall-time ratio per round as min–max. After
every round the outputs are compared.

    python benchmarks/ingest_bench.py --build build --size 32768 --threads 1 2
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import tensorstore as ts


def run(command, env=None):
    """Runs a command under GNU time; returns (wall seconds, CPU seconds, peak RSS in MB).
    GNU time is the measured process's parent: Linux carries a parent's peak RSS into a
    forked child, so measuring from this (large) Python process would overstate small tools."""
    start = time.monotonic()
    result = subprocess.run(["/usr/bin/time", "-f", "measured: %M %U %S", *command], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed: {result.stderr[-2000:]}")
    rss_kb, user, system = result.stderr.rsplit("measured: ", 1)[1].split()[:3]
    return seconds, float(user) + float(system), int(rss_kb) / 1024


def stored_mb(path: pathlib.Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def check_outputs(out: pathlib.Path, t: int, study: dict, outputs: dict) -> None:
    # Every level of ours equals the Python peer's (level 0 too), and level 0 equals the
    # full-resolution page of vips' pyramid (zstd without predictor: lossless). vips'
    # coarser pages are its own shrink, not compared.
    section = f"sections/{study['sections'][0]['brain']}/{study['sections'][0]['section']}"
    levels = sorted(p.name for p in (out / f"tensorstore-{t}").iterdir() if p.is_dir())
    assert "0" in levels, levels
    for level in levels:
        a = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / f"ours-{t}" / section / level)}}).result()
        b = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / f"tensorstore-{t}" / level)}}).result()
        ours = a.read().result()
        if not np.array_equal(ours, b.read().result()):
            sys.exit(f"level {level}: ours and the tifffile+ts peer differ")
        if level == "0":
            # vips decodes its own zstd TIFF (tifffile needs imagecodecs for that).
            raw = out / f"vips-{t}-level0.raw"
            subprocess.run(["vips", "rawsave", f"{outputs['vips'](t)}[page=0]", str(raw)], check=True)
            vips_level0 = np.fromfile(raw, dtype=np.uint8)
            raw.unlink()
            if vips_level0.size != ours.size or not np.array_equal(ours.ravel(), vips_level0):
                sys.exit("level 0: ours and vips' full-resolution page differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--size", type=int, default=32768)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="runs of every tool per thread count")
    parser.add_argument("--clevel", type=int, default=1, help="zstd level for all three tools")
    parser.add_argument("--data", help="scratch folder (default: BUILD/bench-data/ingest-SIZE)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    build = pathlib.Path(args.build).resolve()
    cytonet = build / "cli" / "cytonet"
    data = pathlib.Path(args.data or build / "bench-data" / f"ingest-{args.size}")
    phantom = data / "phantom"
    if not (phantom / "study.json").exists():
        print(f"writing a {args.size}² phantom section (tiled BigTIFF, deflate) ...", flush=True)
        subprocess.run([cytonet, "phantom", "--out", phantom, "--brains", "1", "--sections", "1", "--width",
                        str(args.size), "--height", str(args.size), "--masks", "0", "--quiet"], check=True)
    study = json.loads((phantom / "study.json").read_text())
    slide = phantom / study["sections"][0]["image"]
    megabytes = args.size * args.size / 1e6
    peer = pathlib.Path(__file__).with_name("ingest_tensorstore.py")
    out = data / "out"

    outputs = {"ours": lambda t: out / f"ours-{t}", "vips": lambda t: out / f"vips-{t}.tif",
               "tifffile+ts": lambda t: out / f"tensorstore-{t}"}
    commands = {
        "ours": lambda t: ([cytonet, "ingest", phantom / "study.json", "--out", out / f"ours-{t}", "--force", "--quiet",
                            "--no-sync", "--threads", str(t), "--codec", "zstd", "--clevel", str(args.clevel)], None),
        "vips": lambda t: (["vips", "tiffsave", slide, out / f"vips-{t}.tif", "--tile", "--pyramid", "--bigtiff",
                            "--tile-width", "512", "--tile-height", "512", "--compression", "zstd", "--level",
                            str(args.clevel), "--predictor", "none"], dict(os.environ, VIPS_CONCURRENCY=str(t))),
        "tifffile+ts": lambda t: ([sys.executable, peer, slide, out / f"tensorstore-{t}", "--threads", str(t),
                                   "--codec", "zstd", "--clevel", str(args.clevel)], None),
    }
    results = []
    print(f"input: {slide.name}, {args.size}² px ({megabytes:.0f} MB of pixels); zstd level {args.clevel}; "
          f"{args.rounds} rounds, the tools' order rotating; medians, wall-time ratio min–max over rounds")
    print(f"{'tool':<12} {'T':>2} {'seconds':>8} {'CPU s':>7} {'MB/s':>8} {'MB/s/core':>10} {'MB/CPU-s':>9} "
          f"{'peak RSS MB':>12} {'stored MB':>10} {'ours × (wall)':>14} {'min–max':>11} {'ours × (CPU)':>13}")
    tools = list(commands)
    for t in args.threads:
        runs = {tool: [] for tool in tools}
        for r in range(args.rounds):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for tool in tools[r % len(tools):] + tools[: r % len(tools)]:
                command, env = commands[tool](t)
                seconds, cpu, rss = run([str(c) for c in command], env)
                runs[tool].append({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss,
                                   "stored_mb": stored_mb(outputs[tool](t))})
            check_outputs(out, t, study, outputs)
        ours = runs["ours"]
        for tool in tools:
            med = {key: statistics.median(x[key] for x in runs[tool]) for key in runs[tool][0]}
            wall = [x["seconds"] / o["seconds"] for x, o in zip(runs[tool], ours)]
            r = {"tool": tool, "threads": t, **med, "rounds": runs[tool], "mb_per_s": megabytes / med["seconds"],
                 "mb_per_s_per_core": megabytes / med["seconds"] / t, "mb_per_cpu_second": megabytes / med["cpu_seconds"],
                 "ours_speedup": statistics.median(wall), "ours_speedup_min": min(wall), "ours_speedup_max": max(wall),
                 "ours_cpu_efficiency": statistics.median(x["cpu_seconds"] / o["cpu_seconds"]
                                                          for x, o in zip(runs[tool], ours))}
            print(f"{tool:<12} {t:>2} {r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} {r['mb_per_s']:>8.1f} "
                  f"{r['mb_per_s_per_core']:>10.1f} {r['mb_per_cpu_second']:>9.1f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['stored_mb']:>10.0f} {r['ours_speedup']:>14.2f} {min(wall):>5.2f}–{max(wall):<5.2f} "
                  f"{r['ours_cpu_efficiency']:>13.2f}", flush=True)
            results.append(r)
    print("every round: ours and the tifffile+ts peer wrote identical levels (0 included); "
          "level 0 equals vips' full-resolution page")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
