"""Draws a run's loss curve (and learning rate) from its metrics.jsonl into a PNG.

    python scripts/plot_loss.py RUN_DIR/metrics.jsonl OUT.png [BATCH_SIZE]

With BATCH_SIZE, a line marks log(B − 1): the loss of features that tell the samples of a
batch nothing apart (every score equal). A loss at that line has learnt nothing yet.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    with open(sys.argv[1]) as metrics:
        rows = [json.loads(line) for line in metrics if line.strip()]
    if not rows:
        sys.exit(f"{sys.argv[1]} holds no steps")
    steps = [r["step"] for r in rows]
    figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=120)
    loss_axis.plot(steps, [r["loss"] for r in rows], color="tab:blue", linewidth=1, alpha=0.5, label="loss")
    window = max(1, len(rows) // 20)  # a running mean shows the trend through the batch noise
    running = [0.0]
    for r in rows:
        running.append(running[-1] + r["loss"])
    smooth = [(running[i + 1] - running[max(0, i - window + 1)]) / (i + 1 - max(0, i - window + 1))
              for i in range(len(rows))]
    loss_axis.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"loss, mean of {window} steps")
    if len(sys.argv) == 4:
        uniform = math.log(int(sys.argv[3]) - 1)
        loss_axis.axhline(uniform, color="grey", linestyle="--", linewidth=1,
                          label=f"log(B − 1) = {uniform:.2f}: features that tell nothing apart")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("contrastive loss")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [r["lr"] for r in rows], color="tab:orange", linewidth=1, label="learning rate")
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    loss_axis.legend(loc="upper right")
    loss_axis.set_title(f"pretraining: {len(rows)} steps, "
                        f"{sum(r['patches_per_s'] for r in rows) / len(rows):.0f} patches/s, "
                        f"data wait {100 * sum(r['data_wait_fraction'] for r in rows) / len(rows):.0f} %")
    figure.tight_layout()
    figure.savefig(sys.argv[2])
    print(f"loss curve: {sys.argv[2]}")


if __name__ == "__main__":
    main()
