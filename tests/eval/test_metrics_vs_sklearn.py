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


def test_pca_equals_scikit_learn_up_to_sign(oracle):
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(2)
    cases = []
    for i in range(20):
        dims = int(rng.integers(2, 12))
        n = int(rng.integers(3, 80)) if i % 4 else int(rng.integers(2, dims + 1))  # some with fewer points than dims
        # Spread scales keep the singular values apart, so each component is defined up to sign.
        features = rng.normal(size=(n, dims)) * np.geomspace(10, 0.5, dims) + rng.normal(size=dims)
        cases.append({"features": features.ravel().tolist(), "dims": dims, "pca_components": 0})
    results = oracle(cases)
    for case, ours in zip(cases, results):
        x = np.array(case["features"]).reshape(-1, case["dims"])
        peer = PCA(svd_solver="full").fit(x)
        got = ours["pca"]
        count = len(got["explained_variance"])
        assert count == min(x.shape)
        assert np.allclose(got["mean"], peer.mean_, rtol=1e-9, atol=1e-12)
        assert np.allclose(got["explained_variance"], peer.explained_variance_[:count], rtol=1e-9, atol=1e-12)
        assert np.allclose(got["explained_variance_ratio"], peer.explained_variance_ratio_[:count], rtol=1e-9,
                           atol=1e-12)
        components = np.array(got["components"]).reshape(count, -1)
        # A component with (almost) no variance has no defined direction: compare those with variance.
        defined = peer.explained_variance_[:count] > 1e-9 * peer.explained_variance_[0]
        signs = np.sign(np.sum(components * peer.components_[:count], axis=1))
        assert np.allclose((components * signs[:, None])[defined], peer.components_[:count][defined], rtol=1e-9,
                           atol=1e-9)
        # Our sign convention: each component's largest-magnitude entry is positive, as
        # scikit-learn ≥ 1.5 signs them: the same signs.
        largest = components[np.arange(count), np.argmax(np.abs(components), axis=1)]
        assert (largest[defined] > 0).all()
        assert (signs[defined] == 1).all()
        projection = np.array(got["transform"]).reshape(len(x), count)
        assert np.allclose((projection * signs)[:, defined], peer.transform(x)[:, :count][:, defined], rtol=1e-9,
                           atol=1e-9)


def test_pca_of_many_points_takes_the_scatter_matrix_and_equals_scikit_learn(oracle):
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(6)
    n, dims = 100_000, 48  # n·dims = 4.8e6: past the threshold, n ≥ 4·dims
    x = rng.normal(size=(n, dims)) * np.geomspace(10, 0.5, dims) + rng.normal(size=dims)
    [ours] = oracle([{"features": x.ravel().tolist(), "dims": dims, "pca_components": 8}])
    peer = PCA(n_components=8, svd_solver="full").fit(x)
    got = ours["pca"]
    assert np.allclose(got["explained_variance"], peer.explained_variance_, rtol=1e-9, atol=0)
    assert np.allclose(got["explained_variance_ratio"], peer.explained_variance_ratio_, rtol=1e-9, atol=0)
    assert np.allclose(np.array(got["components"]).reshape(8, dims), peer.components_, rtol=0, atol=1e-9)
    [error] = oracle([{"features": x[:3].ravel().tolist(), "dims": dims, "pca_components": 5}])
    assert "error" in error["pca"]  # 5 components of 3 points


def test_cross_validated_regression_on_pca_projections_equals_scikit_learn(oracle):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score
    rng = np.random.default_rng(3)
    cases, inputs = [], []
    for i in range(12):
        dims = int(rng.integers(3, 10))
        n = int(rng.integers(20, 90))  # n mod 5 ≠ 0 in most cases: the first folds are larger
        x = rng.normal(size=(n, dims)) * np.geomspace(5, 0.5, dims)
        y = x @ rng.normal(size=dims) + rng.normal(scale=0.5 + i % 3, size=n)
        projection = PCA(svd_solver="full").fit_transform(x)  # fitted once on all points, as the paper
        for width in (1, dims // 2, dims):
            features = x if width == dims and i % 2 else projection[:, :width]
            cases.append({"features": features.ravel().tolist(), "dims": features.shape[1], "target": y.tolist(),
                          "folds": 5})
            inputs.append((features, y))
    results = oracle(cases)
    for (features, y), ours in zip(inputs, results):
        expected = cross_val_score(LinearRegression(), features, y, cv=KFold(5), scoring="r2")
        assert np.allclose(ours["cv_r2"], expected, rtol=1e-9, atol=1e-9), (ours["cv_r2"], expected)


def numpy_area_similarity(features, area):
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit @ unit.T
    areas = np.unique(area)
    out = np.full((len(areas), len(areas)), np.nan)
    for i, a in enumerate(areas):
        for j, b in enumerate(areas):
            pairs = np.outer(area == a, area == b)
            np.fill_diagonal(pairs, False)  # a point is not paired with itself
            if pairs.any():
                out[i, j] = cosine[pairs].mean()
    return areas, out


def test_area_similarity_and_its_correlation_across_brains_equal_numpy(oracle):
    rng = np.random.default_rng(4)
    cases, inputs = [], []
    for i in range(15):
        dims = int(rng.integers(2, 16))
        groups = []
        for brain in range(2):
            n = int(rng.integers(3, 60))
            area = rng.choice([2, 5, 7, 11, 13], size=n)
            if i % 3 == 0:
                area[0] = 99  # an area with one point: its diagonal entry is undefined
            features = rng.normal(size=(n, dims)) + area[:, None] % 3
            groups.append((features, area))
        cases.append({"dims": dims, "areas": [{"features": f.ravel().tolist(), "area": a.tolist()} for f, a in groups]})
        inputs.append(groups)
    results = oracle(cases)
    for groups, ours in zip(inputs, results):
        matrices = []
        for (features, area), got in zip(groups, ours["similarity"]):
            areas, expected = numpy_area_similarity(features, area)
            values = np.array([np.nan if v is None else v for v in got["values"]]).reshape(len(areas), -1)
            assert got["areas"] == areas.tolist()
            assert np.allclose(values, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
            matrices.append((areas, expected))
        (a_areas, a), (b_areas, b) = matrices
        common = np.intersect1d(a_areas, b_areas)
        ia, ib = np.searchsorted(a_areas, common), np.searchsorted(b_areas, common)
        upper = np.triu_indices(len(common))
        u, v = a[np.ix_(ia, ia)][upper], b[np.ix_(ib, ib)][upper]
        keep = ~np.isnan(u) & ~np.isnan(v)
        assert close(ours["matrix_correlation"], np.corrcoef(u[keep], v[keep])[0, 1])


def test_mean_cluster_purity_equals_the_contingency_matrix(oracle):
    cases = random_cases(5)
    for case, ours in zip(cases, oracle(cases)):
        contingency = metrics.cluster.contingency_matrix(case["truth"], case["clusters"])
        assert close(ours["mean_cluster_purity"], np.mean(contingency.max(axis=0) / contingency.sum(axis=0)))
