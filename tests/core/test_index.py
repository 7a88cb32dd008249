import json

import numpy as np
import pytest

from core.index import IndexConfig, IndexFormatError, IndexMismatchError, VectorIndex

MODEL = "minilm-l6"


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 50) -> np.ndarray:
    """Unit vectors around random centres, closer to real embeddings than uniform noise."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(corpus: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ corpus.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, axis=1)


def _recall(approx: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)]))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    corpus = _unit(rng, 600, 32)
    ids = [f"doc-{i}" for i in range(len(corpus))]
    return ids, corpus, _unit(rng, 7, 32)


def test_flat_search_matches_numpy_brute_force(data):
    ids, corpus, queries = data
    index = VectorIndex(32, MODEL)
    index.add(ids, corpus)
    assert index.kind == "flat" and len(index) == 600
    got_ids, got_scores = index.search(queries, k=10)
    top, scores = _brute_force(corpus, queries, 10)
    assert got_ids == [[ids[j] for j in row] for row in top]
    np.testing.assert_allclose(got_scores, scores, atol=1e-5)
    assert got_scores.dtype == np.float32 and got_scores.shape == (7, 10)


def test_search_edge_cases(data):
    ids, corpus, queries = data
    index = VectorIndex(32, MODEL)
    empty_ids, empty_scores = index.search(queries, k=5)
    assert empty_ids == [[]] * 7 and empty_scores.shape == (7, 0)
    index.add(ids[:3], corpus[:3])
    one_ids, one_scores = index.search(queries[0], k=50)  # 1-D query, k > count
    assert len(one_ids) == 1 and sorted(one_ids[0]) == sorted(ids[:3]) and one_scores.shape == (1, 3)
    assert list(one_scores[0]) == sorted(one_scores[0], reverse=True)
    with pytest.raises(ValueError, match="k must be positive"):
        index.search(queries, k=0)
    with pytest.raises(IndexMismatchError, match="dimension 16"):
        index.search(np.ones((2, 16), np.float32), k=1)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(32, np.nan), k=1)


def test_add_remove_upsert_by_string_ids(data):
    ids, corpus, queries = data
    index = VectorIndex(32, MODEL)
    index.add(ids[:100], corpus[:100])
    assert index.remove(["doc-5", "doc-7"]) == 2
    assert len(index) == 98 and not index.contains("doc-5") and "doc-7" not in index and "doc-8" in index
    found, _ = index.search(corpus[5], k=98)
    assert "doc-5" not in found[0] and "doc-7" not in found[0]
    with pytest.raises(KeyError, match="doc-5"):
        index.remove(["doc-5"])
    assert index.remove(["doc-5", "doc-9"], missing_ok=True) == 1
    # Upsert: the id keeps one entry and now points at the new vector.
    index.add(["doc-0"], corpus[500])
    assert len(index) == 97
    top, scores = index.search(corpus[500], k=1)
    assert top == [["doc-0"]] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(index.get_vectors(["doc-0", "doc-1"]), corpus[[500, 1]], atol=1e-6)
    assert index.ids[:3] == ["doc-1", "doc-2", "doc-3"] and index.ids[-1] == "doc-0"


def test_add_rejects_bad_input(data):
    ids, corpus, _ = data
    index = VectorIndex(32, MODEL)
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        index.add(ids[:2], corpus[:3])
    with pytest.raises(ValueError, match="Duplicate ids"):
        index.add(["a", "a"], corpus[:2])
    with pytest.raises(ValueError, match="non-empty strings"):
        index.add(["a", ""], corpus[:2])
    with pytest.raises(IndexMismatchError, match="dimension 16"):
        index.add(["a"], np.ones((1, 16), np.float32))
    with pytest.raises(IndexMismatchError, match="other-model"):
        index.add(["a"], corpus[:1], embedding_model="other-model")
    index.add([], np.empty((0, 32), np.float32))
    assert len(index) == 0
    index.add(["a"], corpus[:1], embedding_model=MODEL)
    assert index.ids == ["a"]


def test_cosine_metric_normalises(data):
    ids, corpus, queries = data
    index = VectorIndex(32, MODEL, kind="flat", metric="cosine")
    index.add(ids[:50], corpus[:50] * 7.0)
    _, scores = index.search(queries * 3.0, k=5)
    _, expected = _brute_force(corpus[:50], queries, 5)
    np.testing.assert_allclose(scores, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip_gives_identical_results(tmp_path, kind):
    rng = np.random.default_rng(1)
    corpus, queries = _clustered(rng, 2000, 32), _clustered(rng, 20, 32)
    ids = [f"item/{i}" for i in range(len(corpus))]
    index = VectorIndex(32, MODEL, kind=kind, config=IndexConfig(ivf_nlist=16, ivf_nprobe=4))
    index.add(ids, corpus)
    index.remove(ids[:10])  # tombstones for HNSW, real removal for flat and IVF
    before = index.search(queries, k=10)
    path = index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["embedding_model"] == MODEL and manifest["dim"] == 32 and manifest["count"] == 1990
    assert manifest["kind"] == kind and manifest["metric"] == "ip" and manifest["built_at"]
    assert json.loads((path / manifest["ids_file"]).read_text())["ids"][0] == "item/10"
    loaded = VectorIndex.load(path, expected_model=MODEL)
    after = loaded.search(queries, k=10)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert len(loaded) == 1990 and loaded.kind == kind and loaded.built_at == index.built_at
    # The loaded index stays usable: removal and upsert after load.
    loaded.remove(["item/10"])
    loaded.add(["item/11"], queries[0])
    assert loaded.search(queries[0], k=1)[0] == [["item/11"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temp dirs left behind


def test_save_replaces_existing_directory(tmp_path, data):
    ids, corpus, _ = data
    index = VectorIndex(32, MODEL)
    index.add(ids[:5], corpus[:5])
    index.save(tmp_path / "idx")
    index.add(ids[5:8], corpus[5:8])
    index.save(tmp_path / "idx")
    assert len(VectorIndex.load(tmp_path / "idx")) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_refuses_index_built_with_another_model(tmp_path, data):
    ids, corpus, _ = data
    index = VectorIndex(32, MODEL)
    index.add(ids[:5], corpus[:5])
    index.save(tmp_path / "idx")
    with pytest.raises(IndexMismatchError, match="built with embedding model 'minilm-l6', not 'other'"):
        VectorIndex.load(tmp_path / "idx", expected_model="other")
    loaded = VectorIndex.load(tmp_path / "idx")
    with pytest.raises(IndexMismatchError, match="re-embed"):
        loaded.add(["x"], corpus[5], embedding_model="other")
    assert len(loaded) == 5


def test_corrupt_or_missing_files_give_clear_errors(tmp_path, data):
    ids, corpus, _ = data
    index = VectorIndex(32, MODEL)
    index.add(ids[:5], corpus[:5])
    path = index.save(tmp_path / "idx")
    manifest_path = path / "manifest.json"
    good = manifest_path.read_text()
    assert json.loads((path / "artifact.json").read_text())["kind"] == "aigc-vector-index"

    with pytest.raises(FileNotFoundError, match="does not exist"):
        VectorIndex.load(tmp_path / "nope")
    manifest_path.write_text("{not json")
    with pytest.raises(IndexFormatError, match=r"manifest.json is not valid JSON"):
        VectorIndex.load(path)
    manifest_path.write_text(json.dumps({k: v for k, v in json.loads(good).items() if k != "dim"}))
    with pytest.raises(IndexFormatError, match=r"lacks field\(s\) \['dim'\]"):
        VectorIndex.load(path)
    manifest_path.write_text(json.dumps({**json.loads(good), "count": 6}))
    with pytest.raises(IndexFormatError, match=r"manifest.json does not match the checksum in .*artifact"):
        VectorIndex.load(path)
    manifest_path.write_text(good)
    (path / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexFormatError, match=r"index.faiss does not match the checksum"):
        VectorIndex.load(path)
    # verify=False (an enclosing artifact checks the hashes) leaves the index's own checks.
    with pytest.raises(IndexFormatError, match="not a readable FAISS index"):
        VectorIndex.load(path, verify=False)
    # An index saved before artifact manifests (no artifact.json) is checked by its own consistency rules.
    index.save(path)
    (path / "artifact.json").unlink()
    manifest_path.write_text(json.dumps({**json.loads(good), "count": 6}))
    with pytest.raises(IndexFormatError, match="manifest count 6"):
        VectorIndex.load(path)
    manifest_path.write_text(json.dumps({**json.loads(good), "dim": 16}))
    with pytest.raises(IndexFormatError, match="FAISS dimension 32 != manifest dim 16"):
        VectorIndex.load(path)
    manifest_path.write_text(good)
    (path / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexFormatError, match="not a readable FAISS index"):
        VectorIndex.load(path)
    (path / "index.faiss").unlink()
    with pytest.raises(FileNotFoundError, match="index.faiss is missing"):
        VectorIndex.load(path)
    manifest_path.unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        VectorIndex.load(path)


@pytest.mark.parametrize(
    ("kind", "config"),
    [("hnsw", IndexConfig(hnsw_m=16, hnsw_ef_search=64)), ("ivf", IndexConfig(ivf_nlist=64, ivf_nprobe=8))],
)
def test_approximate_index_recall_at_10(kind, config):
    rng = np.random.default_rng(2)
    corpus, queries = _clustered(rng, 5000, 64), _clustered(rng, 100, 64)
    ids = [str(i) for i in range(len(corpus))]
    exact = VectorIndex(64, MODEL, kind="flat")
    exact.add(ids, corpus)
    approx = VectorIndex(64, MODEL, kind=kind, config=config)
    approx.add(ids, corpus)
    assert approx.kind == kind
    truth, _ = exact.search(queries, k=10)
    found, scores = approx.search(queries, k=10)
    assert _recall(found, truth) >= 0.9
    assert np.isfinite(scores).all()


def test_hnsw_removal_uses_tombstones_then_compacts():
    rng = np.random.default_rng(3)
    corpus = _clustered(rng, 400, 16)
    ids = [f"d{i}" for i in range(400)]
    index = VectorIndex(16, MODEL, kind="hnsw", config=IndexConfig(compact_ratio=0.5))
    index.add(ids, corpus)
    index.remove(ids[:100])
    assert len(index) == 300 and index._index.ntotal == 400  # tombstoned, not yet rebuilt
    found, _ = index.search(corpus[:100], k=5)
    assert not {i for row in found for i in row} & set(ids[:100])
    index.remove(ids[100:250])  # 250 of 400 stored are dead: over compact_ratio, so rebuilt
    assert len(index) == 150 and index._index.ntotal == 150
    found, _ = index.search(corpus[300], k=1)
    assert found == [["d300"]]


def test_auto_switches_from_flat_to_hnsw_above_threshold():
    rng = np.random.default_rng(4)
    corpus = _clustered(rng, 300, 16)
    ids = [f"d{i}" for i in range(300)]
    index = VectorIndex(16, MODEL, config=IndexConfig(flat_threshold=200))
    index.add(ids[:150], corpus[:150])
    assert index.kind == "flat"
    index.remove(["d0"])
    index.add(ids[150:], corpus[150:])
    assert index.kind == "hnsw" and len(index) == 299
    found, scores = index.search(corpus[[1, 299]], k=1)
    assert found == [["d1"], ["d299"]] and scores[:, 0] == pytest.approx([1.0, 1.0], abs=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="kind must be"):
        VectorIndex(8, MODEL, kind="annoy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hnsw_m must be positive"):
        IndexConfig(hnsw_m=0)
    with pytest.raises(ValueError, match="embedding_model"):
        VectorIndex(8, "")
    index = VectorIndex.from_config(8, MODEL, IndexConfig(kind="hnsw", metric="cosine"))
    assert index.kind == "hnsw" and index.metric == "cosine"


def test_auto_index_moves_to_ivf_sq8_past_the_ivf_threshold(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(900, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"v{i}" for i in range(900)]
    config = IndexConfig(flat_threshold=100, ivf_threshold=600, ivf_nprobe=64)
    index = VectorIndex.from_config(32, "test-model", config)
    index.add(ids[:400], vectors[:400])
    assert index.kind == "hnsw"
    index.remove(["v3"])  # a tombstone must not come back as a live vector
    index.add(ids[400:], vectors[400:])
    assert index.kind == "ivf" and index.config.ivf_storage == "sq8" and len(index) == 899
    assert "v3" not in index
    hits, _ = index.search(vectors[[0, 450, 899]], k=1)
    assert hits == [["v0"], ["v450"], ["v899"]]
    out = index.save(tmp_path / "idx")
    loaded = VectorIndex.load(out)
    assert loaded.kind == "ivf" and loaded.config.ivf_storage == "sq8" and len(loaded) == 899
    assert loaded.search(vectors[[7]], k=1)[0] == [["v7"]]


@pytest.mark.parametrize(
    ("kind", "config"),
    [("hnsw", IndexConfig(hnsw_m=4, hnsw_ef_construction=20)), ("ivf", IndexConfig(ivf_nlist=64))],
)
def test_calibrate_keeps_the_cheapest_setting_reaching_the_recall_target(tmp_path, kind, config):
    rng = np.random.default_rng(5)
    # Uniform random vectors: the hard case, where the cheapest settings miss the target.
    corpus, queries, later = _unit(rng, 4000, 32), _unit(rng, 60, 32), _unit(rng, 60, 32)
    ids = [str(i) for i in range(len(corpus))]
    exact = VectorIndex(32, MODEL, kind="flat")
    exact.add(ids, corpus)
    index = VectorIndex(32, MODEL, kind=kind, config=config)
    index.add(ids, corpus)
    if kind == "ivf":
        with pytest.raises(ValueError, match="original vectors"):
            index.calibrate(queries, k=100)
    found = index.calibrate(queries, k=100, target_recall=0.95, vectors=corpus if kind == "ivf" else None)
    setting = "hnsw_ef_search" if kind == "hnsw" else "ivf_nprobe"
    assert found.setting == setting and found.recall >= 0.95 and getattr(index.config, setting) == found.value
    cheaper = [v for v in found.tried if v < found.value]
    assert cheaper and all(found.tried[v] < 0.95 for v in cheaper)  # the first setting reaching it
    # Queries it did not see get about the same recall; the choice survives save and load.
    assert _recall(index.search(later, k=100)[0], exact.search(later, k=100)[0]) >= 0.93
    loaded = VectorIndex.load(index.save(tmp_path / "idx"))
    assert loaded.calibration == found and getattr(loaded.config, setting) == found.value
    assert loaded.search(later, k=100)[0] == index.search(later, k=100)[0]


def test_calibrating_a_flat_index_is_exact(data):
    ids, corpus, queries = data
    index = VectorIndex(32, MODEL, kind="flat")
    index.add(ids, corpus)
    assert index.calibrate(queries, k=10).setting == "exact"
    with pytest.raises(ValueError, match="target_recall"):
        index.calibrate(queries, k=10, target_recall=1.5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_get_vectors_returns_the_stored_rows_in_the_order_asked(tmp_path, kind):
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((300, 16)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(corpus))]
    index = VectorIndex(16, MODEL, kind=kind, metric="ip")
    index.add(ids, corpus)
    index.remove(ids[:5])
    loaded = VectorIndex.load(index.save(tmp_path / "idx"))
    wanted = [ids[i] for i in rng.permutation(np.arange(5, 300))[:50]]
    for each in (index, loaded):
        vectors = each.get_vectors(wanted)
        assert vectors.dtype == np.float32 and vectors.shape == (50, 16)
        np.testing.assert_array_equal(vectors, corpus[[int(i[1:]) for i in wanted]])
        assert each.get_vectors([]).shape == (0, 16)
    with pytest.raises(KeyError, match="not in the index"):
        index.get_vectors(["v0"])
