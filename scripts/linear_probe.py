"""Linear probes of the phantom's areas: is the area signal in the pixels, and did
pretraining find it?

For each feature set a logistic regression is trained on the points of one brain and tested
on another brain (never split within a brain: neighbouring patches overlap), in both
directions, and scored by macro-F1 over the areas of the test brain. Feature sets:

  mni          the point's MNI position (|x|, y, z): the shortcut a position-trained model
               can take, shown as a reference;
  intensity    mean, standard deviation and a 16-bin histogram of the patch;
  texture      the histogram plus the radially averaged log power spectrum (24 rings) and
               the mean grey of 16 concentric rings (a laminar profile seen in any rotation);
  random_init  backbone features of the same network with random weights (seeded);
  pretrained   backbone features of RUN_DIR/weights.pt (with --weights).

Every image feature set is scored twice: as it is (standardised over the training brain
only) and with each feature standardised per section (which removes per-section stain
shifts, and which a user cannot do on a single new section). Patches are plain centre
crops (no augmentation), the same size and level as in pretraining.

    python scripts/linear_probe.py --build build --dataset DS [--weights RUN/weights.pt]
        [--sections PB01/0002,PB02/0002] [--level 0 --size 256] [--out probe.json]
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler


def import_modules(build):
    root = pathlib.Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(pathlib.Path(build).resolve() / "python"))
    sys.path.insert(0, str(root / "python"))
    import cytonet
    import cytonet_torch

    return cytonet, cytonet_torch


def select_points(dataset, sections):
    index = dataset.index
    names = [f"{brain}/{section}" for brain, section in dataset.index_sections]  # the index's section ids
    unknown = sorted(set(sections) - set(names))
    if unknown:
        sys.exit(f"linear_probe: {', '.join(unknown)} not in the dataset's index (it has {', '.join(names)})")
    section_names = np.array(names)[index["section"]]
    keep = np.ones(len(section_names), bool) if not sections else np.isin(section_names, sections)
    rows = np.flatnonzero(keep)
    return {
        "rows": rows,
        "section": section_names[rows],
        "brain": np.array([n.split("/")[0] for n in section_names[rows]]),
        "area": index["area"][rows],
        "x": index["x_px"][rows],
        "y": index["y_px"][rows],
        "mni": np.stack([np.abs(index["mni_x"][rows]), index["mni_y"][rows], index["mni_z"][rows]], 1),
    }


def read_patches(dataset, points, level, size):
    patches = np.empty((len(points["rows"]), size, size), np.uint8)
    for i, (section, x, y) in enumerate(zip(points["section"], points["x"], points["y"])):
        brain, name = section.split("/")
        patches[i] = dataset.read(brain, name, level=level, centre=(float(x), float(y)), size=size)
    return patches


def intensity_features(patches):
    p = patches.reshape(len(patches), -1).astype(np.float64)
    hist = np.stack([np.histogram(row, bins=16, range=(0, 256))[0] for row in p]) / p.shape[1]
    return np.concatenate([p.mean(1, keepdims=True), p.std(1, keepdims=True), hist], 1)


def texture_features(patches):
    n, size, _ = patches.shape
    yy, xx = np.indices((size, size)) - (size - 1) / 2
    radius = np.hypot(yy, xx)
    frequency_radius = np.fft.fftshift(radius) / (size / 2)
    spectrum_ring = np.minimum((np.fft.fftshift(frequency_radius) * 24).astype(int), 24)
    grey_ring = np.minimum((radius / (size / 2) * 16).astype(int), 16)
    out = []
    for patch in patches.astype(np.float64):
        power = np.log1p(np.abs(np.fft.fft2(patch - patch.mean())) ** 2)
        spectrum = np.bincount(spectrum_ring.ravel(), power.ravel(), 25)[:24] / np.bincount(spectrum_ring.ravel(), None, 25)[:24]
        profile = np.bincount(grey_ring.ravel(), patch.ravel(), 17)[:16] / np.bincount(grey_ring.ravel(), None, 17)[:16]
        out.append(np.concatenate([spectrum, profile]))
    return np.concatenate([intensity_features(patches), np.array(out)], 1)


def network_features(cytonet_torch, patches, model, weights, seed, threads):
    torch.manual_seed(seed)
    config = {"small": cytonet_torch.ResNetConfig.small, "resnet50": cytonet_torch.ResNetConfig.resnet50}[model]()
    net = cytonet_torch.CytoNetResNet(config)
    if weights:
        state = torch.load(weights)
        net.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    net.eval()
    torch.set_num_threads(threads)
    features = []
    with torch.no_grad():
        for start in range(0, len(patches), 64):
            x = torch.from_numpy(patches[start:start + 64]).float().unsqueeze(1)
            features.append(net.features((x / 255 - 0.5) / 0.25).numpy())
    return np.concatenate(features).astype(np.float64)


def standardise_per_section(features, sections):
    out = np.empty_like(features)
    for s in np.unique(sections):
        m = sections == s
        out[m] = (features[m] - features[m].mean(0)) / (features[m].std(0) + 1e-9)
    return out


def directions(points):
    """("A->B", training points' mask, test points' mask) for every ordered pair of brains."""
    brains = sorted(set(points["brain"]))
    for train in brains:
        for test in brains:
            if train != test:
                yield f"{train}->{test}", points["brain"] == train, points["brain"] == test


def probe(features, points, seed):
    """Macro-F1 of every (train brain → test brain) direction."""
    scores = {}
    for direction, a, b in directions(points):
        scaler = StandardScaler().fit(features[a])
        classifier = LogisticRegression(max_iter=3000, C=1.0, random_state=seed)
        classifier.fit(scaler.transform(features[a]), points["area"][a])
        predicted = classifier.predict(scaler.transform(features[b]))
        scores[direction] = float(f1_score(points["area"][b], predicted, average="macro"))
    return scores


def chance(points, seed, draws=20):
    """Macro-F1 of guessing areas at the training brain's frequencies, averaged over draws."""
    rng = np.random.default_rng(seed)
    scores = {}
    for direction, a, b in directions(points):
        labels, counts = np.unique(points["area"][a], return_counts=True)
        truth = points["area"][b]
        f1 = [f1_score(truth, rng.choice(labels, len(truth), p=counts / counts.sum()), average="macro")
              for _ in range(draws)]
        scores[direction] = float(np.mean(f1))
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--sections", default="", help="brain/section list, comma-separated (default: all)")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="small", choices=["small", "resnet50"])
    parser.add_argument("--weights", help="RUN_DIR/weights.pt of a pretraining")
    parser.add_argument("--seed", type=int, default=0, help="random-init weights and the probe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the scores as JSON here")
    args = parser.parse_args()

    cytonet, cytonet_torch = import_modules(args.build)
    dataset = cytonet.open(args.dataset)
    points = select_points(dataset, [s for s in args.sections.split(",") if s])
    if len(set(points["brain"])) < 2:
        sys.exit("linear_probe: the sections must come from at least two brains")
    started = time.time()
    patches = read_patches(dataset, points, args.level, args.size)
    print(f"[probe] {len(patches)} patches of {args.size}² px at level {args.level} from "
          f"{len(set(points['section']))} sections, {len(set(points['area']))} areas "
          f"({time.time() - started:.1f} s)", file=sys.stderr)

    feature_sets = {"mni": points["mni"], "intensity": intensity_features(patches),
                    "texture": texture_features(patches),
                    "random_init": network_features(cytonet_torch, patches, args.model, None, args.seed, args.threads)}
    if args.weights:
        feature_sets["pretrained"] = network_features(cytonet_torch, patches, args.model, args.weights, args.seed,
                                                      args.threads)
    results = {"points": int(len(patches)), "sections": sorted(set(points["section"])), "seed": args.seed,
               "chance": chance(points, args.seed), "raw": {}, "per_section": {}}
    for name, features in feature_sets.items():
        results["raw"][name] = probe(features, points, args.seed)
        if name != "mni":
            results["per_section"][name] = probe(standardise_per_section(features, points["section"]), points,
                                                 args.seed)
        print(f"[probe] {name} done ({time.time() - started:.1f} s)", file=sys.stderr)

    def cell(scores):
        values = list(scores.values())
        return f"{min(values):.2f}–{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"

    print(f"macro-F1, train on one brain, test on the other ({len(patches)} points; chance "
          f"{cell(results['chance'])})")
    print(f"| features | raw | each feature standardised per section |\n|---|---|---|")
    for name in feature_sets:
        per_section = cell(results["per_section"][name]) if name in results["per_section"] else "–"
        print(f"| {name} | {cell(results['raw'][name])} | {per_section} |")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
