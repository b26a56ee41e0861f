"""`cytonet report` end to end on a small phantom: every table's numbers are in report.json
under the documented keys and agree with each other (macro-F1 recomputed from the confusion
matrix), fine-tuning trains backbone and classifier, a second run gives the same bytes, the
plots are PNG files, and mistakes (an unknown brain, a mask of the wrong size, a missing
checkpoint, an --out that is a file) are errors naming them."""
import json
import math
import pathlib
import subprocess

import numpy as np
import pytest

from test_train_cli import cli, train, write_config  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run = lambda *a: subprocess.run([str(cli), *map(str, a)], check=True, capture_output=True)  # noqa: E731
    # Patches of 96 px at level 1 cover 192 level-0 px: the masks' size.
    run("phantom", "--out", root / "study", "--brains", "2", "--sections", "2", "--width", "4096", "--height",
        "3072", "--masks", "4", "--mask-size", "192")
    run("ingest", root / "study" / "study.json", "--out", root / "ds", "--quiet", "--no-sync")
    run("index", root / "study" / "study.json", "--dataset", root / "ds", "--patch-size", "256")
    train(cli, write_config(root / "c.json", root / "ds", root / "run", steps=4, checkpoint_every=4,
                            brains=["PB01"]))
    return root


def report(cli, study, out, *extra, check=True):
    args = [str(cli), "report", "--dataset", str(study / "ds"), "--checkpoint", str(study / "run"), "--out", str(out),
            "--masks", str(study / "study" / "masks"), "--areas", str(study / "study" / "areas.json"), "--threads",
            "1", *map(str, extra)]
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"report failed ({result.returncode}): {result.stdout}\n{result.stderr}")
    return result


FINE_TUNE = ("--fine-tune-epochs", "2", "--fine-tune-batch", "8")


@pytest.fixture(scope="module")
def first(cli, study):
    out = study / "first"
    report(cli, study, out, *FINE_TUNE)
    return out


def macro_f1_from_confusion(counts):
    counts = np.array(counts, dtype=float)
    tp = np.diag(counts)
    denominator = 2 * tp + (counts.sum(0) - tp) + (counts.sum(1) - tp)
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0)))


def test_every_table_is_in_report_json_and_the_numbers_agree(first):
    r = json.loads((first / "report.json").read_text())
    # Pretraining saw PB01 only: it is the seen brain, PB02 the unseen one.
    assert r["setup"]["brains"] == {"seen": ["PB01"], "transfer": [], "unseen": ["PB02"]}
    for split in ("seen", "unseen"):
        for model in ("pretrained", "random_init", "intensity", "texture", "mni"):
            for metric in ("macro_f1", "top1", "top3"):
                assert 0 <= r["probe"][split][model][metric] <= 1, (split, model, metric)
            assert r["probe"][split][model]["top1"] <= r["probe"][split][model]["top3"]
        for model in ("pretrained", "random_init", "intensity", "texture"):
            assert 0 <= r["probe_per_section"][split][model]["macro_f1"] <= 1
        assert r["probe"][split]["chance"]["macro_f1"] < 0.5
    assert "transfer" not in r["probe"]
    # The confusion matrix is the seen split's: its macro-F1 is the table's.
    assert macro_f1_from_confusion(r["confusion"]["counts"]) == pytest.approx(
        r["probe"]["seen"]["pretrained"]["macro_f1"], abs=1e-12)
    hops = r["probe_errors"]["seen"]["hop_counts"]
    assert sum(hops) + r["probe_errors"]["seen"]["unconnected"] == r["setup"]["points"]["seen"]
    assert hops[0] == sum(np.diag(r["confusion"]["counts"]))  # hop 0: the correct ones
    for model in ("pretrained", "random_init"):
        for percent in ("1", "5", "10", "20", "100"):
            layer = r["layers"][model][percent]
            assert len(layer["folds"]) == 5 and 0 <= layer["macro_f1_mean"] <= 1
            assert layer["macro_f1_mean"] == pytest.approx(np.mean(layer["folds"]), abs=1e-12)
    for model in ("pretrained", "random_init", "intensity", "texture"):
        assert set(r["regression"][model]) >= {"mni_x", "mni_y", "mni_z", "thickness_mm", "cell_density_l4"}
        assert r["regression"][model]["mni_y"]["pca1"]["mean"] <= 1
        assert 0 < r["clustering"][model]["purity_mean"] <= 1
        assert r["clustering"][model]["chi_area"] > 0
        assert -1 <= r["similarity"][model]["correlation_mean"] <= 1
    markdown = (first / "report.md").read_text()
    assert "## Area probe, fine-tuned" in markdown
    assert "## Area probe" in markdown and "## Layer segmentation" in markdown and "## Regression" in markdown


def test_fine_tuning_trains_backbone_and_classifier(first):
    r = json.loads((first / "report.json").read_text())
    setup = r["setup"]["fine_tune"]
    assert setup["epochs"] == 2 and setup["batch_size"] == 8 and setup["augment"] is True
    classes = setup["classes"]
    assert 2 <= classes <= len(r["confusion"]["labels"])
    for model in ("pretrained", "random_init"):
        for split in ("seen", "unseen"):
            scores = r["fine_tune"][split][model]
            assert 0 <= scores["macro_f1"] <= 1 and scores["top1"] <= scores["top3"] <= 1, (split, model)
            assert scores["points"] == r["setup"]["points"][split]
        training = r["fine_tune_training"][model]
        assert training["steps"] == 2 * max(1, setup["samples"] // 8)
        # The classifier starts at zero (every class equally likely: loss ln C) and moves; a
        # frozen backbone would not. (That it learns: test_learning.py, on a learnable phantom.)
        assert len(training["epoch_loss"]) == 2
        assert all(math.isfinite(v) for v in training["epoch_loss"])
        assert abs(training["epoch_loss"][-1] - math.log(classes)) > 1e-3, training
        assert training["backbone_change"] > 1e-3, training
    assert "transfer" not in r["fine_tune"]


def test_the_plots_are_png_files(first):
    r = json.loads((first / "report.json").read_text())
    assert set(r["plots"]) == {"confusion.png", "hops.png", "layers.png", "similarity.png", "embedding_area.png",
                               "embedding_brain.png", "loss.png"}
    for plot in r["plots"]:
        data = (first / plot).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, plot


def test_a_second_run_reuses_the_features_and_gives_the_same_report(cli, study, first):
    out = study / "second"
    result = report(cli, study, out, *FINE_TUNE)
    assert (out / "report.json").read_bytes() == (first / "report.json").read_bytes()
    for plot in ("confusion.png", "layers.png", "embedding_area.png"):
        assert (out / plot).read_bytes() == (first / plot).read_bytes(), plot
    assert "extracting" in result.stderr and " chunks" not in result.stderr  # the features were reused


def test_mistakes_are_errors_naming_them(cli, study, tmp_path):
    unknown = report(cli, study, tmp_path / "a", "--seen", "NOPE", check=False)
    assert unknown.returncode != 0 and "NOPE" in unknown.stderr
    # An --out that is a file is refused before any work.
    (tmp_path / "taken").write_text("not a folder")
    taken = report(cli, study, tmp_path / "taken", check=False)
    assert taken.returncode == 2 and str(tmp_path / "taken") in taken.stderr, taken.stderr
    assert "extracting" not in taken.stderr
    small_batch = report(cli, study, tmp_path / "d", "--fine-tune-epochs", "1", "--fine-tune-batch", "1", check=False)
    assert small_batch.returncode == 2 and "fine-tuning" in small_batch.stderr, small_batch.stderr
    no_device = report(cli, study, tmp_path / "e", "--device", "abacus", check=False)
    assert no_device.returncode == 2 and "abacus" in no_device.stderr, no_device.stderr
    missing = subprocess.run([str(cli), "report", "--dataset", str(study / "ds"), "--checkpoint",
                              str(tmp_path / "none"), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert missing.returncode != 0 and "none" in missing.stderr
    # Masks of another size than the patches' field of view (the points the index dropped
    # are skipped; the first kept one is named).
    used = json.loads((study / "first" / "report.json").read_text())["setup"]["layer_masks"]
    assert used["used"] >= 5
    masks = tmp_path / "masks"
    for source in (study / "study" / "masks").rglob("*.tif"):
        target = masks / source.relative_to(study / "study" / "masks")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["vips", "resize", str(source), str(target), "0.5", "--kernel", "nearest"], check=True)
    result = subprocess.run([str(cli), "report", "--dataset", str(study / "ds"), "--checkpoint", str(study / "run"),
                             "--out", str(tmp_path / "c"), "--masks", str(masks)], capture_output=True, text=True)
    assert result.returncode != 0 and str(masks) in result.stderr and "covers" in result.stderr, result.stderr
