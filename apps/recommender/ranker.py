"""The learned rankers over candidate features, and the rows they are trained on.

Training uses a time-based validation split of the training data: per user, the last training
interaction is the target, earlier ones feed the candidate generator and the features; every
candidate is a row labelled 1 if it is the target. Three models (``ranker.model``):

* :class:`LinearRanker` (``logistic``): a logistic regression on standardised features, saved as
  JSON (feature names, means, scales, coefficients);
* :class:`LinearRanker` fit by :meth:`LinearRanker.fit_listwise` (``listwise``): the same linear
  score and JSON file, its coefficients fit by a softmax over each user's candidates (the target
  against the others), L2-penalised;
* :class:`LinearRanker` from :meth:`LinearRanker.blend` (``blend``): both fits above on the same
  rows, one linear model whose coefficients are their weighted mean (``listwise_weight``): both are
  log-odds per standard deviation of a feature (the pointwise fit approximates the conditional
  logit when targets are rare), so the mean is an ensemble of the two in one JSON file;
* :class:`GBDTRanker` (``lambdarank``): LightGBM gradient-boosted trees with the LambdaRank
  objective, one query group per user, boosting stopped early on held-out users' NDCG; saved as
  LightGBM's text model file (``ranker.txt``) beside a JSON manifest (``ranker.json``: features,
  parameters, rounds, the text file's sha256). Its per-feature contributions (the reasons) are
  LightGBM's TreeSHAP values.

Nothing is pickled. :func:`load_ranker` reads either kind; :func:`fit_ranker` fits the configured one.

:class:`~apps.recommender.hybrid.HybridScorer` serves it (candidates ranked by the model, with
reasons).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.baselines import EASEScorer
from apps.recommender.candidates import CandidateGenerator
from apps.recommender.config import GBDTConfig, RankerConfig
from apps.recommender.features import FEATURES, INTERACTION_FEATURES, FeatureBuilder
from apps.recommender.interactions import Dataset
from apps.recommender.splits import Split, leave_last_out
from core.atomic import write_bytes_atomic
from core.config import to_dict

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.json"
TREES_FILE = "ranker.txt"
FORMAT_VERSION = 1


class LinearRanker:
    """Logistic regression on standardised features; JSON round trip.

    Args:
        feature_names: Columns, in order.
    """

    kind = "logistic"
    #: Contributions are coefficient x standardised value: a reason compares them with the user's
    #: average candidate (see ``HybridScorer._lifts``).
    centred_contributions = False

    def __init__(self, feature_names: Sequence[str] = FEATURES) -> None:
        self.feature_names = list(feature_names)
        self.mean = np.zeros(len(self.feature_names))
        self.scale = np.ones(len(self.feature_names))
        self.coef = np.zeros(len(self.feature_names))
        self.intercept = 0.0
        self.fitted = False

    def _z(self, features: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise ValueError(f"missing feature column(s) {missing}")
        return (features[self.feature_names].to_numpy(dtype=np.float64) - self.mean) / self.scale

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, c: float = 1.0, max_iter: int = 1000
    ) -> LinearRanker:
        """Fit on feature rows and 0/1 labels.

        Raises:
            ValueError: Labels hold only one class.
        """
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels, dtype=int)
        if len(np.unique(labels)) < 2:
            raise ValueError(
                f"ranker training needs positive and negative rows; got labels {np.unique(labels)}"
            )
        raw = features[self.feature_names].to_numpy(dtype=np.float64)
        self.mean = raw.mean(axis=0)
        self.scale = np.where(raw.std(axis=0) > 1e-12, raw.std(axis=0), 1.0)
        model = LogisticRegression(C=c, max_iter=max_iter)
        model.fit(self._z(features), labels)
        self.coef = model.coef_[0].astype(np.float64)
        self.intercept = float(model.intercept_[0])
        self.fitted = True
        return self

    def fit_listwise(
        self,
        features: pd.DataFrame,
        labels: np.ndarray,
        groups: np.ndarray,
        c: float = 1.0,
        max_iter: int = 1000,
    ) -> LinearRanker:
        """Fit by a listwise (softmax) objective: each query's target against its own candidates.

        Maximises, over the queries whose target is among their candidates, the log-probability of
        the target under a softmax of ``z @ coef`` over that query's rows (a conditional logit),
        with the L2 penalty ``|coef|^2 / (2 c)`` (the scale of scikit-learn's ``C``). Unlike the
        pointwise logistic regression, queries without their target among the candidates, and
        anything constant within a query (``user_activity``), teach it nothing; only the order of
        candidates within a query counts. The intercept is 0 (it does not change a ranking).

        Args:
            features: Feature rows (at least :attr:`feature_names`).
            labels: 1 for a query's target, else 0 (one target per query).
            groups: The query of each row (any hashable ids).
            c: Inverse L2 regularisation.
            max_iter: L-BFGS iterations.

        Raises:
            ValueError: No query has its target among its rows, or lengths differ.
        """
        from scipy.optimize import minimize

        labels = np.asarray(labels, dtype=np.int64)
        if not len(labels) == len(features) == len(groups):
            raise ValueError(f"{len(features)} rows, {len(labels)} labels, {len(groups)} groups")
        codes = pd.factorize(np.asarray(groups))[0]
        positives = np.bincount(codes, weights=labels, minlength=codes.max(initial=-1) + 1)
        keep = positives[codes] > 0 if len(codes) else np.zeros(0, dtype=bool)
        if not keep.any():
            raise ValueError(
                "listwise ranker training needs at least one query with its target among its rows"
            )
        raw = features[self.feature_names].to_numpy(dtype=np.float64)
        self.mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale = np.where(std > 1e-12, std, 1.0)
        z = ((raw - self.mean) / self.scale)[keep]
        q = pd.factorize(codes[keep])[0]
        y = labels[keep].astype(np.float64)
        n_queries = int(q.max()) + 1
        weight = 1.0 / np.bincount(q, weights=y)[q]  # several targets share their query's weight
        target_z = (z * (y * weight)[:, None]).sum(axis=0)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            s = z @ w
            top = np.full(n_queries, -np.inf)
            np.maximum.at(top, q, s)
            e = np.exp(s - top[q])
            total = np.bincount(q, weights=e, minlength=n_queries)
            p = e / total[q]
            value = float((np.log(total) + top).sum() - target_z @ w + w @ w / (2 * c))
            grad = z.T @ p - target_z + w / c
            return value, grad

        result = minimize(
            loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
        )
        if not result.success:
            logger.warning("Listwise ranker: L-BFGS stopped early", extra={"message": str(result.message)})
        self.coef = np.asarray(result.x, dtype=np.float64)
        self.intercept = 0.0
        self.fitted = True
        logger.info(
            "Listwise ranker fitted",
            extra={"queries": n_queries, "rows": int(len(z)), "loss": round(float(result.fun), 3)},
        )
        return self

    @classmethod
    def blend(cls, pointwise: LinearRanker, listwise: LinearRanker, weight: float) -> LinearRanker:
        """One linear ranker scoring ``(1 - weight) x pointwise + weight x listwise`` (before the
        intercept, which is the pointwise one's share: it does not change a ranking).

        Both must be fitted on the same rows (same features, means and scales), as
        :func:`fit_ranker` does.

        Raises:
            ValueError: The two differ in features or standardisation, or ``weight`` is outside [0, 1].
        """
        if not 0 <= weight <= 1:
            raise ValueError(f"blend weight must be in [0, 1], got {weight}")
        if (
            pointwise.feature_names != listwise.feature_names
            or not np.allclose(pointwise.mean, listwise.mean)
            or not np.allclose(pointwise.scale, listwise.scale)
        ):
            raise ValueError("blended rankers must share features, means and scales (fit on the same rows)")
        out = cls(pointwise.feature_names)
        out.mean, out.scale = pointwise.mean.copy(), pointwise.scale.copy()
        out.coef = (1 - weight) * pointwise.coef + weight * listwise.coef
        out.intercept = (1 - weight) * pointwise.intercept
        out.fitted = True
        logger.info("Blended ranker", extra={"listwise_weight": weight})
        return out

    def standardise(self, features: pd.DataFrame) -> np.ndarray:
        """The standardised ``(n_rows, n_features)`` matrix that :meth:`decision` and
        :meth:`contributions` read (pass it instead of the frame to compute it once for both)."""
        return self._z(features)

    def decision(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Logits (higher ranks first) of a feature frame or its :meth:`standardise` matrix."""
        z = features if isinstance(features, np.ndarray) else self._z(features)
        return z @ self.coef + self.intercept

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per row and feature, coefficient x standardised value (of a frame or its matrix)."""
        z = features if isinstance(features, np.ndarray) else self._z(features)
        return z * self.coef

    def direction(self, feature: str) -> float:
        """Sign of the feature's effect on the score (its coefficient)."""
        return float(self.coef[self.feature_names.index(feature)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters."""
        return {
            "format_version": FORMAT_VERSION,
            "model": "logistic_regression",
            "features": self.feature_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearRanker:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: Wrong version or inconsistent lengths.
        """
        if data.get("format_version") != FORMAT_VERSION or data.get("model") != "logistic_regression":
            raise ValueError(
                f"not a logistic ranker of format {FORMAT_VERSION}: "
                f"{data.get('model')!r}, format {data.get('format_version')!r}"
            )
        ranker = cls(data["features"])
        n = len(ranker.feature_names)
        for key in ("mean", "scale", "coef"):
            if len(data[key]) != n:
                raise ValueError(f"ranker '{key}' has {len(data[key])} values for {n} features")
            setattr(ranker, key, np.asarray(data[key], dtype=np.float64))
        ranker.intercept = float(data["intercept"])
        ranker.fitted = True
        return ranker

    def save(self, directory: str | Path, **extra: Any) -> Path:
        """Write ``ranker.json`` (plus ``extra`` metadata) atomically into ``directory``."""
        path = Path(directory) / RANKER_FILE
        write_bytes_atomic(path, json.dumps({**self.to_dict(), **to_dict(extra)}, indent=2).encode("utf-8"))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> LinearRanker:
        """Read ``ranker.json`` from ``directory``.

        Raises:
            FileNotFoundError: No ranker there.
            ValueError: The file is corrupt.
        """
        path = Path(directory) / RANKER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ranker file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: corrupt ranker file ({err})") from err


class GBDTRanker:
    """LightGBM LambdaRank trees over candidate features; text model file + JSON manifest.

    Args:
        feature_names: Columns, in order.
        config: Tree and boosting settings.
    """

    kind = "lambdarank"
    #: TreeSHAP contributions are already relative to the model's average prediction.
    centred_contributions = True

    def __init__(self, feature_names: Sequence[str] = FEATURES, config: GBDTConfig | None = None) -> None:
        self.feature_names = list(feature_names)
        self.config = config or GBDTConfig()
        self.booster: Any = None
        self.rounds = 0
        self.directions = {name: 0.0 for name in self.feature_names}
        self.report: dict[str, Any] = {}

    @property
    def fitted(self) -> bool:
        """Whether the trees are trained or loaded."""
        return self.booster is not None

    def params(self) -> dict[str, Any]:
        """LightGBM parameters of :attr:`config` (deterministic for a fixed thread count)."""
        c = self.config
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [c.eval_at],
            "lambdarank_truncation_level": max(c.eval_at * 2, 20),
            "num_leaves": c.num_leaves,
            "learning_rate": c.learning_rate,
            "min_child_samples": c.min_child_samples,
            "feature_fraction": c.feature_fraction,
            "bagging_fraction": c.bagging_fraction,
            "bagging_freq": 1 if c.bagging_fraction < 1 else 0,
            "lambda_l2": c.lambda_l2,
            "num_threads": c.threads,
            "seed": 0,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def standardise(self, features: pd.DataFrame) -> np.ndarray:
        """The raw ``(n_rows, n_features)`` float64 matrix in :attr:`feature_names` order (trees need
        no scaling; the name matches :class:`LinearRanker` so the scorer treats both alike)."""
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise ValueError(f"missing feature column(s) {missing}")
        return features[self.feature_names].to_numpy(dtype=np.float64)

    def _matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return features if isinstance(features, np.ndarray) else self.standardise(features)

    def fit(self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray) -> GBDTRanker:
        """Fit on candidate rows, 0/1 labels and each row's query (user).

        A seeded ``val_fraction`` of the users with a positive row is held out to pick the number
        of rounds (held-out NDCG@``eval_at``); the trees are then refit on every user for that many
        rounds.

        Args:
            features: Feature rows (at least :attr:`feature_names`).
            labels: 1 for the user's target item, else 0.
            groups: The user of each row (any hashable ids).

        Raises:
            ValueError: No user has a positive row, or lengths differ.
        """
        import lightgbm as lgb

        labels = np.asarray(labels, dtype=np.int64)
        if not len(labels) == len(features) == len(groups):
            raise ValueError(f"{len(features)} rows, {len(labels)} labels, {len(groups)} groups")
        codes = pd.factorize(np.asarray(groups))[0]
        # Users without their target among the candidates teach a ranking objective nothing.
        useful = np.bincount(codes, weights=labels) > 0
        if not useful.any():
            raise ValueError("ranker training needs at least one user with the target among the candidates")
        keep = useful[codes]
        order = np.flatnonzero(keep)[np.argsort(codes[keep], kind="stable")]
        x, y, q = self._matrix(features)[order], labels[order], codes[order]
        users = np.unique(q)
        rng = np.random.default_rng(0)
        held = np.zeros(len(users), dtype=bool)
        n_held = int(round(self.config.val_fraction * len(users)))
        if 0 < n_held < len(users):
            held[rng.choice(len(users), n_held, replace=False)] = True
        in_val = np.isin(q, users[held])
        params = self.params()
        rounds = self.config.max_rounds
        history: dict[str, Any] = {}
        if in_val.any():
            fit_set = lgb.Dataset(
                x[~in_val],
                y[~in_val],
                group=_sizes(q[~in_val]),
                feature_name=self.feature_names,
                free_raw_data=False,
            )
            val_set = lgb.Dataset(x[in_val], y[in_val], group=_sizes(q[in_val]), reference=fit_set)
            evals: dict[str, Any] = {}
            probe = lgb.train(
                params,
                fit_set,
                num_boost_round=self.config.max_rounds,
                valid_sets=[val_set],
                valid_names=["held_out"],
                callbacks=[
                    lgb.early_stopping(self.config.patience, verbose=False),
                    lgb.record_evaluation(evals),
                ],
            )
            rounds = max(1, int(probe.best_iteration or self.config.max_rounds))
            curve = evals["held_out"][f"ndcg@{self.config.eval_at}"]
            history = {"held_out_ndcg": float(curve[rounds - 1]), "held_out_users": int(held.sum())}
        full = lgb.Dataset(x, y, group=_sizes(q), feature_name=self.feature_names)
        self.booster = lgb.train(params, full, num_boost_round=rounds)
        self.rounds = rounds
        contrib = self.booster.predict(x, pred_contrib=True)[:, :-1]
        self.directions = {
            name: _correlation(x[:, j], contrib[:, j]) for j, name in enumerate(self.feature_names)
        }
        self.report = {
            "rounds": rounds,
            "users": int(len(users)),
            "rows": int(len(y)),
            "positives": int(y.sum()),
            **history,
        }
        logger.info("LambdaRank ranker fitted", extra=self.report)
        return self

    def decision(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw scores (higher ranks first) of a feature frame or its :meth:`standardise` matrix."""
        self._check()
        x = self._matrix(features)
        if not len(x):
            return np.zeros(0)
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=self.config.threads))

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per row and feature, the TreeSHAP contribution to the raw score."""
        self._check()
        x = self._matrix(features)
        if not len(x):
            return np.zeros((0, len(self.feature_names)))
        out = self.booster.predict(x, pred_contrib=True, num_threads=self.config.threads)
        return np.asarray(out)[:, :-1]

    def direction(self, feature: str) -> float:
        """Sign of the feature's effect: correlation of its value with its contribution on the
        training rows (positive: higher values raise the score)."""
        return self.directions.get(feature, 0.0)

    def _check(self) -> None:
        if self.booster is None:
            raise RuntimeError("GBDTRanker is not fitted; call fit() or load() first")

    def save(self, directory: str | Path, **extra: Any) -> Path:
        """Write ``ranker.txt`` (LightGBM's text model) and ``ranker.json`` (manifest) atomically."""
        self._check()
        directory = Path(directory)
        text = self.booster.model_to_string(num_iteration=self.rounds).encode("utf-8")
        write_bytes_atomic(directory / TREES_FILE, text)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": self.kind,
            "features": self.feature_names,
            "gbdt": to_dict(self.config),
            "rounds": self.rounds,
            "directions": self.directions,
            "report": self.report,
            "trees_file": TREES_FILE,
            "trees_sha256": hashlib.sha256(text).hexdigest(),
            **to_dict(extra),
        }
        path = directory / RANKER_FILE
        write_bytes_atomic(path, json.dumps(manifest, indent=2).encode("utf-8"))
        return path

    @classmethod
    def from_manifest(cls, directory: Path, data: dict[str, Any]) -> GBDTRanker:
        """Rebuild from a ``ranker.json`` manifest and the text model beside it.

        Raises:
            ValueError: Wrong version, a missing or altered ``ranker.txt``, or mismatched features.
        """
        import lightgbm as lgb

        from core.config import from_dict

        if data.get("format_version") != FORMAT_VERSION or data.get("model") != cls.kind:
            raise ValueError(f"not a {cls.kind} ranker of format {FORMAT_VERSION}")
        trees = directory / data["trees_file"]
        if not trees.is_file():
            raise ValueError(f"{trees}: the ranker's tree file is missing")
        text = trees.read_bytes()
        if hashlib.sha256(text).hexdigest() != data["trees_sha256"]:
            raise ValueError(f"{trees}: sha256 differs from the one in {RANKER_FILE}")
        ranker = cls(data["features"], from_dict(GBDTConfig, data["gbdt"]))
        ranker.booster = lgb.Booster(model_str=text.decode("utf-8"))
        if ranker.booster.feature_name() != ranker.feature_names:
            raise ValueError(f"{trees}: features {ranker.booster.feature_name()} != {ranker.feature_names}")
        ranker.rounds = int(data["rounds"])
        ranker.directions = {k: float(v) for k, v in data["directions"].items()}
        ranker.report = dict(data.get("report", {}))
        return ranker

    @classmethod
    def load(cls, directory: str | Path) -> GBDTRanker:
        """Read ``ranker.json`` + ``ranker.txt`` from ``directory``."""
        ranker = load_ranker(directory)
        if not isinstance(ranker, cls):
            raise ValueError(f"{directory}: the ranker there is {ranker.kind}, not {cls.kind}")
        return ranker


Ranker = LinearRanker | GBDTRanker


def load_ranker(directory: str | Path) -> Ranker:
    """The ranker saved in ``directory``, of whichever kind its ``ranker.json`` names.

    Raises:
        FileNotFoundError: No ranker there.
        ValueError: The files are corrupt or of an unknown kind.
    """
    directory = Path(directory)
    path = directory / RANKER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ranker file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("model") == GBDTRanker.kind:
            return GBDTRanker.from_manifest(directory, data)
        return LinearRanker.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: corrupt ranker file ({err})") from err


def ranker_features(config: RankerConfig) -> tuple[str, ...]:
    """The feature columns a ranker of ``config`` learns from."""
    return FEATURES + (INTERACTION_FEATURES if config.activity_interactions else ())


def fit_ranker(features: pd.DataFrame, labels: np.ndarray, config: RankerConfig) -> Ranker:
    """The ranker of ``config.model`` fit on :func:`training_rows` output."""
    names = ranker_features(config)
    queries = (features["query"] if "query" in features.columns else features["user_id"]).to_numpy()
    if config.model == "lambdarank":
        return GBDTRanker(names, config.gbdt).fit(features, labels, queries)
    if config.model == "listwise":
        return LinearRanker(names).fit_listwise(features, labels, queries, config.c, config.max_iter)
    if config.model == "blend":
        pointwise = LinearRanker(names).fit(features, labels, config.c, config.max_iter)
        listwise = LinearRanker(names).fit_listwise(features, labels, queries, config.c, config.max_iter)
        return LinearRanker.blend(pointwise, listwise, config.listwise_weight)
    return LinearRanker(names).fit(features, labels, config.c, config.max_iter)


def _sizes(codes: np.ndarray) -> np.ndarray:
    """Run lengths of consecutive equal values (LightGBM's query group sizes)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return np.diff(np.r_[starts, len(codes)])


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, 0 when either side is constant."""
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def training_rows(
    train: Dataset, item_vectors: np.ndarray, config: RankerConfig
) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidate features and labels from time-based splits of ``train`` (last item per user).

    Round 1 holds out each user's last interaction of ``train`` as the target; round 2 the last
    one of round 1's training part, and so on for ``config.train_rounds`` rounds. Each round's
    candidates and features come from its own training part only (nothing after the target).

    Returns:
        ``(features, labels)``; ``features`` also has ``user_id``, ``item_idx`` and ``query``
        (``round:user``: one ranking query per user and round).
    """
    frames, labels = [], []
    current = train
    for round_ in range(config.train_rounds):
        inner = leave_last_out(current)
        if not len(inner):
            break
        features, round_labels = _round_rows(inner, item_vectors, config)
        features["query"] = f"{round_}:" + features["user_id"].astype(str)
        frames.append(features)
        labels.append(round_labels)
        current = inner.train
    if not frames:
        raise ValueError(f"{train.name}: no user has two interactions to train the ranker on")
    features = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return features, np.concatenate(labels)


def _round_rows(
    inner: Split, item_vectors: np.ndarray, config: RankerConfig
) -> tuple[pd.DataFrame, np.ndarray]:
    """One round of :func:`training_rows`: candidates of ``inner.train`` labelled by its test items."""
    users, targets = inner.test_users, np.array([t[0] for t in inner.test_items], dtype=np.int64)
    if config.max_train_users is not None and len(users) > config.max_train_users:
        keep = np.sort(
            np.random.default_rng(config.seed).choice(len(users), config.max_train_users, replace=False)
        )
        users, targets = users[keep], targets[keep]
    generator = CandidateGenerator(
        inner.train, item_vectors, config=config.candidates, ease=fit_ease(inner.train, config)
    )
    user_ids = inner.train.user_ids[users]
    candidates = generator.generate(user_ids.tolist())
    builder = feature_builder(inner.train, item_vectors, config)
    features = builder.build(candidates)
    target_of = dict(zip(user_ids.tolist(), targets.tolist(), strict=True))
    labels = (candidates["item_idx"].to_numpy() == candidates["user_id"].map(target_of).to_numpy()).astype(
        int
    )
    features[["user_id", "item_idx"]] = candidates[["user_id", "item_idx"]]
    logger.info(
        "Ranker training rows",
        extra={"rows": len(features), "positives": int(labels.sum()), "users": len(users)},
    )
    return features, labels


def fit_ease(train: Dataset, config: RankerConfig) -> EASEScorer | None:
    """The EASE source of the hybrid, fit on ``train`` (``None`` when switched off)."""
    if not config.ease:
        return None
    return EASEScorer(l2=config.ease_l2, max_items=config.ease_max_items, keep=config.ease_keep).fit(train)


def feature_builder(train: Dataset, item_vectors: np.ndarray, config: RankerConfig) -> FeatureBuilder:
    """The :class:`FeatureBuilder` of ``config`` on ``train``."""
    return FeatureBuilder(
        train,
        item_vectors,
        config.recent_days,
        config.max_similar_history,
        config.trend_share,
        config.activity_interactions,
    )
