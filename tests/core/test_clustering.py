"""core.clustering (threshold and density clustering, c-TF-IDF labels) and core.metrics.clustering_scores."""

from __future__ import annotations

import numpy as np
import pytest

from core.clustering import (
    ClusterConfig,
    centrality_order,
    centroid,
    class_tfidf_terms,
    cluster_vectors,
    mean_distances,
)
from core.metrics import clustering_scores


def groups(
    sizes: list[int], dim: int = 16, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """Rows around one random direction per group (cosine ~0.99 within, ~0 across), and their group."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for g, size in enumerate(sizes):
        centre = rng.normal(size=dim)
        for _ in range(size):
            rows.append(centre + noise * np.linalg.norm(centre) * rng.normal(size=dim))
            truth.append(g)
    return np.array(rows), truth


def test_groups_are_found_without_a_cluster_count_largest_first():
    vectors, _ = groups([3, 5, 4, 1])
    labels = cluster_vectors(vectors, ClusterConfig(distance_threshold=0.3))
    # group 1 (5 rows) is cluster 0, group 2 (4) cluster 1, group 0 (3) cluster 2; the lone row is in none
    assert labels.tolist() == [2, 2, 2, 0, 0, 0, 0, 0, 1, 1, 1, 1, -1]
    assert cluster_vectors(vectors, ClusterConfig(distance_threshold=0.3)).tolist() == labels.tolist()


def test_hdbscan_finds_the_dense_groups_by_itself():
    vectors, _ = groups([3, 5, 4])
    labels = cluster_vectors(vectors, ClusterConfig(method="hdbscan", min_cluster_size=3))
    assert labels.tolist() == [2, 2, 2, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_the_threshold_decides_how_far_clusters_merge():
    rng = np.random.default_rng(1)
    a = np.eye(16)[0]
    b = 0.9 * a + np.sqrt(1 - 0.81) * np.eye(16)[1]  # cosine 0.9 to a: distance 0.1
    pair = np.array([c + 0.005 * rng.normal(size=16) for c in [a] * 4 + [b] * 4])
    assert cluster_vectors(pair, ClusterConfig(distance_threshold=0.02)).max() == 1
    assert cluster_vectors(pair, ClusterConfig(distance_threshold=0.5)).tolist() == [0] * 8


def test_small_clusters_and_tiny_inputs_are_unclustered():
    vectors, _ = groups([2, 3])
    labels = cluster_vectors(vectors, ClusterConfig(distance_threshold=0.3, min_cluster_size=3))
    assert labels.tolist() == [-1, -1, 0, 0, 0]
    assert cluster_vectors(vectors[:1]).tolist() == [-1]
    assert cluster_vectors(np.zeros((0, 4))).tolist() == []
    with pytest.raises(ValueError, match="2-D"):
        cluster_vectors(np.zeros(4))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="method"):
        ClusterConfig(method="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_cluster_size"):
        ClusterConfig(min_cluster_size=1)
    with pytest.raises(ValueError, match="distance_threshold"):
        ClusterConfig(distance_threshold=0)


def test_central_rows_come_first_and_mean_distances_follow_average_linkage():
    vectors = np.array([[1.0, 0.3], [1.0, 0.0], [1.0, -0.2], [0.0, 1.0]])
    assert centrality_order(vectors, [0, 1, 2]) == [1, 2, 0]
    assert np.isclose(np.linalg.norm(centroid(vectors, [0, 1, 2])), 1.0)
    labels = np.array([0, 0, 0, -1])
    far, near = mean_distances(vectors, labels, np.array([[0.0, 1.0], [1.0, 0.05]]))[:, 0]
    assert near < 0.05 < 0.6 < far


def test_class_tfidf_labels_name_what_sets_a_cluster_apart():
    texts = [
        "when will my new card arrive",
        "my card has not arrived yet",
        "card still not arrived after a week",
        "how do i top up with apple pay",
        "apple pay top up failed",
        "the weather is nice",
    ]
    terms = class_tfidf_terms(texts, [0, 0, 0, 1, 1, -1], top_n=2)
    assert set(terms) == {0, 1}
    assert "card" in terms[0] and any("arrive" in t for t in terms[0])
    assert any("apple" in t or "pay" in t for t in terms[1])
    assert not any(t in " ".join(terms[0]) for t in ("weather", "apple"))
    assert class_tfidf_terms(["the a", "an the"], [0, 0]) == {0: []}


def test_clustering_scores_count_unclustered_rows_against_nmi_and_ari():
    truth = ["a", "a", "a", "b", "b", "b"]
    perfect = clustering_scores(truth, [0, 0, 0, 1, 1, 1])
    assert perfect == {
        "purity": 1.0,
        "nmi": 1.0,
        "ari": 1.0,
        "clusters": 2,
        "classes": 2,
        "unclustered_share": 0.0,
    }
    mixed = clustering_scores(truth, [0, 0, 1, 1, 1, -1])
    assert mixed["purity"] == pytest.approx(4 / 5) and mixed["unclustered_share"] == pytest.approx(1 / 6)
    shy = clustering_scores(truth, [0, 0, -1, 1, 1, -1])
    assert shy["purity"] == 1.0 and shy["ari"] < 1.0 and shy["nmi"] < 1.0
    assert clustering_scores(truth, [-1] * 6)["purity"] == 0.0
    with pytest.raises(ValueError, match="match"):
        clustering_scores(truth, [0])


def test_minilm_puts_paraphrases_of_one_need_together():
    """Real encoder: three customer needs, four wordings each, and one unrelated question."""
    from core.embeddings import Embedder

    questions = [
        "Do you offer gift wrapping?",
        "Can you wrap my present for me?",
        "Is gift wrap available when I order?",
        "Could my order be wrapped as a gift?",
        "Do you have a mobile app?",
        "Is there an app for iPhone?",
        "Can I download your app on Android?",
        "Where do I get your smartphone app?",
        "Do you give a student discount?",
        "Are there discounts for students?",
        "I'm at university, do I get money off?",
        "Can students get cheaper prices?",
        "What is the capital of Australia?",
    ]
    vectors = Embedder("minilm-l6").encode(questions)
    labels = cluster_vectors(vectors, ClusterConfig(distance_threshold=0.5))
    truth = [0] * 4 + [1] * 4 + [2] * 4 + [3]
    scores = clustering_scores(truth[:12], labels[:12].tolist())
    assert scores["purity"] == 1.0, labels
    assert scores["clusters"] == 3 and (labels[:12] < 0).sum() <= 1, labels
    assert labels[12] == -1
