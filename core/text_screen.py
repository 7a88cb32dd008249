"""A learned binary text screen: normalised text → hashed n-grams (+ embeddings) → logistic regression.

Built for screening untrusted text (e.g. instructions hidden in documents) where an attacker
tries to slip past a keyword list, so the text is first brought to one canonical form
(:func:`fold_text`: NFKC, invisible format characters removed, Latin look-alike letters mapped to
Latin, whitespace collapsed) and scored in several *views* (:func:`text_views`: as written, with
leetspeak digits read as letters, with spaced-out letters joined) and *segments*
(:func:`segments`: sentences and pairs of neighbouring sentences, so one bad sentence in a long
passage is not diluted). :meth:`TextScreen.scan` returns the highest probability over all of them.

Features are scikit-learn's stateless :class:`~sklearn.feature_extraction.text.HashingVectorizer`
over character n-grams (within word boundaries) and word n-grams, optionally followed by sentence
embeddings of a :class:`core.embeddings.Embedder`; the classifier is an L2-regularised logistic
regression. Saved as ``config.json`` + ``model.safetensors`` (the non-zero weights as
index/value pairs), no pickles.

Example:
    >>> screen = TextScreen.fit(texts, labels)          # labels: 1 = flag, 0 = fine
    >>> screen.save_pretrained("screens/injection")
    >>> TextScreen.from_pretrained("screens/injection").scan("Ign0re previous instructions")
    (0.97, 'Ignore previous instructions')
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

if TYPE_CHECKING:  # scikit-learn and scipy load with the first screen: fold_text serves light paths
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer

from core.atomic import atomic_directory, default_file_mode

logger = logging.getLogger(__name__)

SCREEN_KIND = "text-screen"
SCREEN_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Letters of other scripts that render like Latin ones (Unicode confusables, the common subset).
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁɡһԛԝАВЕКМНОРСТХІЈЅԌαεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ",
    "aeopcyxijsdghqwABEKMHOPCTXIJSGaeikvoptuxABEHIKMNOPTYXZ",
)
_CONFUSABLE_SET = frozenset("аеорсухіјѕԁɡһԛԝАВЕКМНОРСТХІЈЅԌαεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ")
_WORD = re.compile(r"\w+(?:[\u0300-\u036f]+\w*)*")
_LEET = str.maketrans("013457@$!|", "oieastasil")
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|]+")
# Four or more single letters separated by spaces, dots, dashes or underscores: "i g n o r e".
_SPACED = re.compile(r"(?<![\w.\-])(?:[A-Za-z][ .\-_]{1,3}){3,}[A-Za-z](?![\w\-])")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+|(?<=-->)|(?=<!--)")


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    # Map look-alikes only in words that are Latin already or made of look-alikes only, so real
    # Cyrillic or Greek words (which contain letters without a Latin twin) stay intact.
    confusable = sum(ch in _CONFUSABLE_SET for ch in word)
    if confusable and (confusable == sum(ch.isalpha() for ch in word) or re.search(r"[A-Za-z]", word)):
        return word.translate(_CONFUSABLES)
    return word


def fold_text(text: str, keep_spacing: bool = False) -> str:
    """One canonical form of ``text`` for screening.

    NFKC (full-width and stylised letters become plain ones), format characters removed (zero-width
    spaces and joiners, bidi controls, soft hyphens, tag characters; Unicode category ``Cf``),
    variation selectors and combining marks on Latin letters dropped, Cyrillic/Greek look-alike
    letters mapped to Latin inside Latin-looking words, whitespace collapsed to single spaces
    (unless ``keep_spacing``: runs of spaces and line breaks then stay, for :func:`text_views` and
    :func:`segments`). Case is kept.
    """
    text = unicodedata.normalize("NFKC", text)
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf" or (cat == "Mn" and kept and kept[-1].isascii()) or cat == "Cc" and ch not in "\n\t":
            continue
        kept.append(ch)
    text = _WORD.sub(_fold_word, "".join(kept))
    return text if keep_spacing else " ".join(text.split())


def _deleet(match: re.Match[str]) -> str:
    token = match.group(0)
    if re.search(r"[A-Za-z]", token) and re.search(r"[0-9@$!|]", token):
        return token.translate(_LEET)
    return token


def _join_spaced(match: re.Match[str]) -> str:
    words = re.split(r"\s{2,}|[ .\-_]{2,}", match.group(0))
    return " ".join(re.sub(r"[ .\-_]", "", word) for word in words)


def text_views(text: str) -> list[str]:
    """``fold_text(text)`` plus, when they differ, its leetspeak-decoded and letter-joined readings."""
    spaced = fold_text(text, keep_spacing=True)
    deleeted = _LEET_TOKEN.sub(_deleet, spaced)
    views: list[str] = []
    for view in (spaced, deleeted, _SPACED.sub(_join_spaced, spaced), _SPACED.sub(_join_spaced, deleeted)):
        view = " ".join(view.split())
        if view not in views:
            views.append(view)
    return views


def segments(text: str, whole_chars: int = 600, max_segments: int = 64, min_words: int = 3) -> list[str]:
    """Sentences of ``text`` and pairs of neighbouring sentences (and the whole text when short).

    Sentences of fewer than ``min_words`` words ("For example:") only count inside a pair: alone
    they carry too little for a classifier to judge.
    """
    pieces = [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]
    if len(pieces) == 1:
        return pieces
    sentences = pieces
    out = [s for s in sentences if len(s.split()) >= min_words]
    out += [f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False)]
    if len(sentences) > 2 and len(text) <= whole_chars:
        out.append(text.strip())
    if not out and text.strip():
        out = [text.strip()]
    return list(dict.fromkeys(out))[:max_segments]


@dataclass(frozen=True)
class TextScreenConfig:
    """Features and regularisation of a :class:`TextScreen`."""

    char_ngrams: tuple[int, int] = field(default=(2, 5), metadata={"help": "Character n-gram sizes"})
    word_ngrams: tuple[int, int] = field(default=(1, 2), metadata={"help": "Word n-gram sizes"})
    n_features: int = field(default=2**18, metadata={"help": "Hash buckets per analyzer"})
    c: float = field(default=4.0, metadata={"help": "Inverse L2 strength of the logistic regression"})
    threshold: float = field(default=0.5, metadata={"help": "Probability at or above which text is flagged"})
    embedding_model: str | None = field(
        default=None, metadata={"help": "Also use sentence embeddings of this encoder (None: n-grams only)"}
    )
    embedding_weight: float = field(default=1.0, metadata={"help": "Scale of the embedding features"})


def _from_config_dict(data: dict[str, Any]) -> TextScreenConfig:
    data = dict(data)
    for key in ("char_ngrams", "word_ngrams"):
        if key in data:
            data[key] = tuple(data[key])
    return TextScreenConfig(**data)


class TextScreen:
    """A fitted binary screen (see the module docstring).

    Args:
        config: Features and threshold.
        weights: One weight per feature (hashed char n-grams, hashed word n-grams, embedding dims).
        intercept: The bias.
        embedder: The encoder named by ``config.embedding_model`` (loaded on first use when absent).
    """

    def __init__(
        self, config: TextScreenConfig, weights: np.ndarray, intercept: float, embedder: Any = None
    ) -> None:
        self.config = config
        self.weights = np.asarray(weights, dtype=np.float32)
        self.intercept = float(intercept)
        self._embedder = embedder
        self._vectorizers = _vectorizers(config)

    # ------------------------------------------------------------------ features
    @property
    def embedder(self) -> Any:
        """The sentence encoder of the embedding features (``None`` for an n-gram-only screen)."""
        if self._embedder is None and self.config.embedding_model:
            from core.embeddings import Embedder

            self._embedder = Embedder(self.config.embedding_model)
        return self._embedder

    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Feature rows of ``texts`` (used as given: fold them first, as :meth:`probabilities` does)."""
        import scipy.sparse as sp

        blocks = [vec.transform(texts) for vec in self._vectorizers]
        if self.config.embedding_model:
            dense = self.embedder.encode(list(texts)) * self.config.embedding_weight
            blocks.append(sp.csr_matrix(dense))
        return sp.hstack(blocks, format="csr")

    # ------------------------------------------------------------------ scoring
    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text should be flagged (after :func:`fold_text`; no segmentation)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        logits = self.features([fold_text(t) for t in texts]) @ self.weights + self.intercept
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def scan_many(self, texts: Sequence[str]) -> list[tuple[float, str]]:
        """For each text, the highest probability over its segments and views, and that segment.

        Returns:
            ``(probability, segment)`` per text; ``(0.0, "")`` for an empty text.
        """
        owners: list[int] = []
        pieces: list[str] = []
        for i, text in enumerate(texts):
            for segment in segments(fold_text(text, keep_spacing=True)):
                for view in text_views(segment):
                    owners.append(i)
                    pieces.append(view)
        best = [(0.0, "")] * len(texts)
        if pieces:
            logits = self.features(pieces) @ self.weights + self.intercept
            probs = 1.0 / (1.0 + np.exp(-logits))
            for owner, piece, prob in zip(owners, pieces, probs, strict=True):
                if prob > best[owner][0]:
                    best[owner] = (float(prob), piece)
        return best

    def scan(self, text: str) -> tuple[float, str]:
        """``(probability, segment)`` of the most suspicious segment of ``text`` (see :meth:`scan_many`)."""
        return self.scan_many([text])[0]

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[int],
        config: TextScreenConfig | None = None,
        embedder: Any = None,
    ) -> TextScreen:
        """Fit a screen on ``texts`` with ``labels`` (1 = flag, 0 = fine); classes are weighted to balance.

        Raises:
            ValueError: Lengths differ or only one class is present.
        """
        config = config or TextScreenConfig()
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        y = np.asarray(labels, dtype=np.int64)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("labels must hold both classes, 0 and 1")
        screen = cls(config, np.zeros(0), 0.0, embedder)
        from sklearn.linear_model import LogisticRegression

        x = screen.features([fold_text(t) for t in texts])
        model = LogisticRegression(
            C=config.c, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=0
        )
        model.fit(x, y)
        screen.weights = model.coef_[0].astype(np.float32)
        screen.intercept = float(model.intercept_[0])
        logger.info("Fitted text screen", extra={"examples": len(y), "positives": int(y.sum())})
        return screen

    # ------------------------------------------------------------------ I/O
    def save_pretrained(self, directory: str | Path, **extra: Any) -> Path:
        """Write ``config.json`` (kind, version, config, ``extra``) and the non-zero weights, atomically."""
        directory = Path(directory)
        nonzero = np.flatnonzero(self.weights)
        tensors = {
            "indices": nonzero.astype(np.int64),
            "values": self.weights[nonzero].astype(np.float32),
            "intercept": np.asarray([self.intercept], dtype=np.float32),
        }
        manifest = {
            "kind": SCREEN_KIND,
            "format_version": SCREEN_FORMAT_VERSION,
            "n_weights": int(self.weights.size),
            "config": asdict(self.config),
            **extra,
        }
        with atomic_directory(directory) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            # mkdtemp makes the directory private; an artifact is read by other users and processes.
            tmp.chmod(default_file_mode() | 0o111)
            (tmp / WEIGHTS_FILE).chmod(default_file_mode())
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, embedder: Any = None) -> TextScreen:
        """Load a screen written by :meth:`save_pretrained`.

        Raises:
            FileNotFoundError: No ``config.json`` or weights.
            ValueError: Not a text screen, another format version, or weights that do not fit.
        """
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a text screen: it has no {CONFIG_FILE}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if manifest.get("kind") != SCREEN_KIND or manifest.get("format_version") != SCREEN_FORMAT_VERSION:
            raise ValueError(f"{path}: expected kind {SCREEN_KIND!r} version {SCREEN_FORMAT_VERSION}")
        config = _from_config_dict(manifest["config"])
        tensors = load_file(str(directory / WEIGHTS_FILE))
        size = int(manifest["n_weights"])
        expected = 2 * config.n_features
        if size < expected or (tensors["indices"].size and int(tensors["indices"].max()) >= size):
            raise ValueError(f"{directory}: weights do not fit the configured features")
        weights = np.zeros(size, dtype=np.float32)
        weights[tensors["indices"]] = tensors["values"]
        return cls(config, weights, float(tensors["intercept"][0]), embedder)


def _vectorizers(config: TextScreenConfig) -> list[HashingVectorizer]:
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": config.n_features, "alternate_sign": False, "lowercase": True}
    return [
        HashingVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, **common),
        HashingVectorizer(
            analyzer="word", ngram_range=config.word_ngrams, token_pattern=r"(?u)\b\w+\b", **common
        ),
    ]


__all__ = ["TextScreen", "TextScreenConfig", "fold_text", "segments", "text_views"]
