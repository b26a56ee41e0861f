"""eval/metrics.h against scikit-learn on the same random inputs (tests/eval/eval_oracle.cc
runs ours): labels with ties in the scores, classes absent from the truth or from the
predictions, fixed label lists naming labels that never occur. 1e-9 relative."""
import json
import pathlib
import subprocess

import numpy as np
import pytest
from sklearn import metrics

CASES = 40


@pytest.fixture(scope="module")
def oracle(request):
    tool = pathlib.Path(request.config.getoption("--cytonet-bin")).resolve() / "tests" / "eval_oracle"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: build the project first")

    def run(cases):
        out = subprocess.run([str(tool)], input=json.dumps(cases), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    return run


def random_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(CASES):
        # scikit-learn takes 2-class scores as one column: 3 classes or more here.
        n, classes = int(rng.integers(2, 60)), int(rng.integers(3, 9))
        class_labels = sorted(rng.choice(100, size=classes, replace=False).tolist())
        # Some classes never appear in the truth, some never in the predictions.
        truth = rng.choice(class_labels[: max(1, classes - 1)], size=n).tolist()
        prediction = rng.choice(class_labels[1:] if i % 3 == 0 else class_labels, size=n).tolist()
        # Scores on a coarse grid, so that rows hold ties.
        scores = rng.integers(0, 4, size=(n, classes)).astype(float) / 4
        clusters = rng.integers(0, max(2, classes - 1), size=n).tolist()
        features = rng.normal(size=(n, 3))
        case = {"truth": truth, "prediction": prediction, "scores": scores.ravel().tolist(),
                "classes": class_labels, "clusters": clusters, "features": features.ravel().tolist(), "dims": 3,
                "y": rng.normal(size=n).tolist(), "y_hat": rng.normal(size=n).tolist()}
        if i % 4 == 1:
            case["labels"] = class_labels + [1000]  # a label that never occurs
        cases.append(case)
    return cases


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def test_every_metric_equals_scikit_learn_on_random_inputs(oracle):
    cases = random_cases(0)
    results = oracle(cases)
    checked = 0
    for case, ours in zip(cases, results):
        truth, prediction = np.array(case["truth"]), np.array(case["prediction"])
        labels = case.get("labels")
        expected = metrics.f1_score(truth, prediction, labels=labels, average="macro", zero_division=0)
        assert close(ours["macro_f1"], expected), (case, ours["macro_f1"], expected)
        assert ours["confusion"] == metrics.confusion_matrix(truth, prediction, labels=labels).tolist()
        scores = np.array(case["scores"]).reshape(len(truth), -1)
        for k in (1, 2, 3):
            expected = metrics.top_k_accuracy_score(truth, scores, k=k, labels=case["classes"])
            assert close(ours[f"top_{k}"], expected), (k, case, ours[f"top_{k}"], expected)
        ordered = np.sort(scores, axis=1)
        assert np.allclose(ours["margins"], ordered[:, -1] - ordered[:, -2], rtol=0, atol=1e-12)
        clusters = np.array(case["clusters"])
        contingency = metrics.cluster.contingency_matrix(truth, clusters)
        assert close(ours["purity"], contingency.max(axis=0).sum() / len(truth))
        if 2 <= len(set(case["clusters"])) < len(truth):
            expected = metrics.calinski_harabasz_score(np.array(case["features"]).reshape(-1, 3), clusters)
            assert close(ours["calinski_harabasz"], expected), (ours["calinski_harabasz"], expected)
        else:
            assert "error" in ours["calinski_harabasz"]
        assert close(ours["r2"], metrics.r2_score(case["y"], case["y_hat"]))
        checked += 1
    assert checked == CASES


def test_errors_name_the_problem(oracle):
    [out] = oracle([{"truth": [1, 2], "prediction": [1], "y": [1.0], "y_hat": [1.0, 2.0]}])
    assert "1 predictions" in out["macro_f1"]["error"]
    assert "error" in out["r2"]


def test_kmeans_from_the_same_initial_centres_equals_scikit_learn(oracle):
    from sklearn.cluster import KMeans
    rng = np.random.default_rng(1)
    cases = []
    for i in range(20):
        k, dims = int(rng.integers(2, 7)), int(rng.integers(2, 6))
        n = int(rng.integers(k * 5, 200))
        centres = rng.normal(scale=4, size=(k, dims))
        features = centres[rng.integers(0, k, size=n)] + rng.normal(size=(n, dims))
        init = features[rng.choice(n, size=k, replace=False)].copy()
        if i % 5 == 0:
            init[-1] = 1e3  # far from every point: an empty cluster, relocated to the farthest point
        cases.append({"features": features.ravel().tolist(), "dims": dims, "kmeans_init": init.ravel().tolist(),
                      "max_iter": 300 if i % 4 else 3, "tol": 1e-4})
    results = oracle(cases)
    for case, ours in zip(cases, results):
        x = np.array(case["features"]).reshape(-1, case["dims"])
        init = np.array(case["kmeans_init"]).reshape(-1, case["dims"])
        peer = KMeans(n_clusters=len(init), init=init, n_init=1, max_iter=case["max_iter"], tol=case["tol"],
                      algorithm="lloyd").fit(x)
        got = ours["kmeans"]
        assert got["labels"] == peer.labels_.tolist()
        assert np.allclose(np.array(got["centres"]).reshape(init.shape), peer.cluster_centers_, rtol=1e-9, atol=1e-9)
        assert close(got["inertia"], peer.inertia_)
        assert got["iterations"] == peer.n_iter_
