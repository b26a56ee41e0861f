"""Training steps per second: our LibTorch loop (`cytonet train`) against the same loop in
Python PyTorch, the way a lab would write it today.

Both sides do the same work per step: a batch of augmented uint8 patches from our loader
(the Python side through a torch DataLoader over the `cytonet` module's loader), conversion
to float and normalisation, the backbone, the projection head, SpatialNCE, backward, and
LARS-wrapped SGD with Nesterov momentum (python/cytonet_torch.py's twins of train/). Same
model, batch, patch size, seed, torch threads and loader threads. Ours keeps convolution
weights and inputs channels-last (NHWC, its default); the Python side uses PyTorch's default
layout unless --python-channels-last gives it the same.

Rounds are interleaved (ours, Python; then Python, ours; ...). Each side's rate is the
median over the round's steps after the first `--warmup` (start-up and first-touch costs
excluded on both sides) of batch / step time, a step timed from asking for the batch to
the loss on the host; the data wait is the share of that time spent waiting for the batch.
The two sides see the same batches (same seed) but start from different random weights
(LibTorch's and PyTorch's generators differ), so the benchmark prints both mean losses as a
sanity check; that the two compute the same function is what tests/train's equivalence
tests show (losses, gradients, networks, LARS).

    python benchmarks/train_bench.py --build build --dataset DS [--model small --size 256
        --level 0 --batch 32 --steps 40 --rounds 3 --threads 2 --loader-threads 1]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import torch
from torch import nn

from patch_bench_common import import_cytonet, import_cytonet_torch


def run_ours(args, run_dir):
    config = {"dataset": str(pathlib.Path(args.dataset).resolve()), "run_dir": str(run_dir), "model": args.model,
              "level": args.level, "patch_size": args.size, "batch_size": args.batch, "steps": args.steps,
              "base_lr": args.base_lr, "seed": args.seed, "torch_threads": args.threads,
              "loader_threads": args.loader_threads, "checkpoint_every": 1000000, "log_every": 1000000}
    config_path = pathlib.Path(run_dir).with_suffix(".json")
    config_path.write_text(json.dumps(config))
    subprocess.run([str(pathlib.Path(args.build) / "cli" / "cytonet"), "train", "--config", str(config_path)],
                   check=True, stdout=subprocess.DEVNULL)
    lines = [json.loads(line) for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    steady = lines[args.warmup:]
    return {"patches_per_s": statistics.median(line["patches_per_s"] for line in steady),
            "data_wait": statistics.mean(line["data_wait_fraction"] for line in steady),
            "mean_loss": statistics.mean(line["loss"] for line in lines)}


class LoaderBatches(torch.utils.data.IterableDataset):
    """Batches of the cytonet loader as a torch dataset (opened in the iterating process)."""

    def __init__(self, cytonet, args):
        self.cytonet, self.args = cytonet, args

    def __iter__(self):
        a = self.args
        dataset = self.cytonet.open(a.dataset)
        for batch in dataset.loader(batch_size=a.batch, patch_size=a.size, level=a.level, seed=a.seed,
                                    threads=a.loader_threads, ring_depth=3, end_epoch=1000):
            yield torch.from_numpy(batch["images"]), torch.from_numpy(batch["mni"]).float()  # as train/ does


def run_python(args, cytonet, cytonet_torch):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config = {"small": cytonet_torch.ResNetConfig.small, "resnet50": cytonet_torch.ResNetConfig.resnet50}[args.model]()
    backbone = cytonet_torch.CytoNetResNet(config)
    head = cytonet_torch.ProjectionHead(4 * config.stage_widths[-1], 256)
    layout = torch.channels_last if args.python_channels_last else torch.contiguous_format
    backbone = backbone.to(memory_format=layout)
    model = nn.ModuleDict({"backbone": backbone, "head": head}).train()
    optimiser = cytonet_torch.Lars(*cytonet_torch.split_for_weight_decay(model), lr=0.0)
    batches = iter(torch.utils.data.DataLoader(LoaderBatches(cytonet, args), batch_size=None, num_workers=0))
    rates, waits, losses = [], [], []
    for step in range(args.steps):
        start = time.perf_counter()
        images, mni = next(batches)
        loaded = time.perf_counter()
        x = images.unsqueeze(1).float().div_(255).sub_(0.5).div_(0.25).contiguous(memory_format=layout)
        loss = cytonet_torch.spatial_nce_loss(head(backbone.features(x)), mni)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimiser.param_groups:
            group["lr"] = cytonet_torch.learning_rate(step, args.base_lr, args.batch)
        optimiser.step()
        value = loss.item()
        done = time.perf_counter()
        losses.append(value)
        if step >= args.warmup:
            rates.append(args.batch / (done - start))
            waits.append((loaded - start) / (done - start))
    return {"patches_per_s": statistics.median(rates), "data_wait": statistics.mean(waits), "mean_loss": statistics.mean(losses)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--dataset", required=True, help="dataset root, ingested and indexed")
    parser.add_argument("--model", default="small", choices=["small", "resnet50"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of each side's rate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--loader-threads", type=int, default=1, help="loader threads, both sides")
    parser.add_argument("--base-lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python-channels-last", action="store_true",
                        help="give the Python side channels-last (NHWC) weights and inputs too, as ours uses")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    cytonet, cytonet_torch = import_cytonet(args.build), import_cytonet_torch()

    rounds = []
    with tempfile.TemporaryDirectory(prefix="train-bench-") as scratch:
        for r in range(args.rounds):
            result = {}
            for side in (["ours", "python"] if r % 2 == 0 else ["python", "ours"]):
                if side == "ours":
                    result[side] = run_ours(args, pathlib.Path(scratch) / f"run-{r}")
                else:
                    result[side] = run_python(args, cytonet, cytonet_torch)
            result["ratio"] = result["ours"]["patches_per_s"] / result["python"]["patches_per_s"]
            rounds.append(result)
            print(f"round {r + 1}: ours {result['ours']['patches_per_s']:.1f} patches/s "
                  f"(data wait {100 * result['ours']['data_wait']:.1f} %), python "
                  f"{result['python']['patches_per_s']:.1f} patches/s (data wait "
                  f"{100 * result['python']['data_wait']:.1f} %): {result['ratio']:.2f}×; mean loss "
                  f"{result['ours']['mean_loss']:.3f} vs {result['python']['mean_loss']:.3f}", flush=True)
    ratios = [r["ratio"] for r in rounds]
    peer = "python, channels-last" if args.python_channels_last else "python"
    print(f"ours / {peer}, {args.model} {args.size}² batch {args.batch}, {args.threads} torch threads: median "
          f"{statistics.median(ratios):.2f}× (rounds {min(ratios):.2f}–{max(ratios):.2f}×)")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
