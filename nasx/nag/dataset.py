"""NAG's "NAS dataset": architectures labelled with an accuracy and a parameter size, as a file.

NAG's generator learns from a pool of architectures, each with an accuracy and a parameter size
(seed-nag.md §2). The reference trains a one-shot supernet over 4,000 sampled cell pairs, scores
each on a validation batch (§2.4-2.5) and saves the pool with ``torch.save`` as a Python list of
dicts holding transposed adjacency matrices, one-hot vertex types, ``perf`` and a truncated
``params`` (§2.7). nasx stores the pool as plain JSON, read without pickles into architectures of
a named space (format version 1)::

    {
     "format": "nasx-nas-dataset",
     "version": 1,
     "space": "nb201",                      # SearchSpace.describe()["space"]
     "space_config": {...},                  # the whole describe(): sizes params were counted at
     "score_name": "cifar10valid_valid_acc_12ep",
     "params_unit": "M",
     "source": {"kind": "table", "column": "...", "seed": 0, "n": 1000},
     "n": 1000,
     "records": [
      {"arch": "|nor_conv_3x3~0|+...", "genes": [3, ...], "accuracy": 84.1, "params": 0.8},
      ...
     ]
    }

``accuracy`` is higher-is-better: a minimised score (robustness, a latency column) is stored
negated and ``score_name`` says so (``-robustness``). ``params`` is the true parameter count, in
millions, of the space's stand-alone network (`nasx.nag.labels.param_counts`). This departs from
the reference, whose "params" mix units and are truncated to an integer, so they almost only
count the output vertex's predecessors (§2.6). The cell graphs the GAN reads are not
stored: a `nasx.nag.graph.GraphAdapter` derives them from the architectures.

Builders: `from_table` (NAS-Bench-201 rows), `from_archive` (an earlier search),
`from_scores` (a correlate stage's scores), `from_metric` (score architectures with a metric
through a journal; the ``nas_dataset`` stage's default, NAG's one-shot dataset when the metric
reads a trained supernet), all through `from_evaluations`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nasx.errors import NasxError
from nasx.io import Journal, write_text_atomic
from nasx.nag.labels import param_counts
from nasx.search_space.base import Architecture, SearchSpace

if TYPE_CHECKING:
    from nasx.evaluator import Evaluator

#: the ``format`` field of every NAS-dataset file
FORMAT = "nasx-nas-dataset"
#: the format version this module writes and reads
VERSION = 1
#: the NAS-Bench-201 column `from_table` reads by default (validation accuracy after 12 epochs)
DEFAULT_COLUMN = "cifar10valid_valid_acc_12ep"
#: what a record of a scoring journal keeps (`from_metric`)
JOURNAL_KEYS = ("arch", "genes", "failed", "metric", "error", "seconds")
_REBUILD = "rebuild it with stages=[nas_dataset]"


def space_name(space: SearchSpace) -> str:
    """The name a NAS dataset records for ``space`` (``describe()["space"]``, e.g. ``nb201``)."""
    return str(space.describe().get("space", type(space).__name__))


@dataclass(frozen=True, eq=False)
class NASDataset:
    """A NAS dataset: distinct architectures of one space, their accuracy and parameter size.

    Attributes:
        archs: the architectures, distinct.
        accuracy: one higher-is-better value per architecture (read-only float array).
        params: millions of parameters of each stand-alone network (read-only float array).
        score_name: what ``accuracy`` is; a leading ``-`` marks a minimised score negated.
        space: the space's name (`space_name`).
        source: how the dataset was built (``kind`` and its settings).
    """

    archs: tuple[Architecture, ...]
    accuracy: np.ndarray
    params: np.ndarray
    score_name: str
    space: str
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        acc = np.array(self.accuracy, dtype=float).reshape(-1)
        par = np.array(self.params, dtype=float).reshape(-1)
        if not len(self.archs) == len(acc) == len(par):
            raise ValueError(
                f"{len(self.archs)} architectures but {len(acc)} accuracies and {len(par)} params"
            )
        if not (np.isfinite(acc).all() and np.isfinite(par).all()):
            raise ValueError("accuracy and params must be finite")
        acc.setflags(write=False)
        par.setflags(write=False)
        object.__setattr__(self, "archs", tuple(self.archs))
        object.__setattr__(self, "accuracy", acc)
        object.__setattr__(self, "params", par)
        object.__setattr__(self, "source", dict(self.source))

    def __len__(self) -> int:
        return len(self.archs)

    def describe(self) -> dict[str, Any]:
        """Size, score name, source and the range of both labels (the stage's summary)."""

        def stats(v: np.ndarray) -> dict[str, float | None]:
            if not len(v):
                return {"min": None, "max": None, "mean": None, "std": None}
            return {
                "min": float(v.min()),
                "max": float(v.max()),
                "mean": float(v.mean()),
                "std": float(v.std()),
            }

        return {
            "n": len(self),
            "space": self.space,
            "score_name": self.score_name,
            "source": self.source,
            "accuracy": stats(self.accuracy),
            "params": stats(self.params),
        }

    def save(self, path: str | Path, space: SearchSpace) -> Path:
        """Write the dataset to ``path`` atomically (format version `VERSION`); returns the path.

        ``space`` is the one the dataset was built for (it writes the architecture strings).
        """
        if space_name(space) != self.space:
            raise ValueError(f"the dataset is of space {self.space!r}, not {space_name(space)!r}")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "space": self.space,
            "space_config": space.describe(),
            "score_name": self.score_name,
            "params_unit": "M",
            "source": self.source,
            "n": len(self),
        }
        records = [
            {
                "arch": space.to_str(a),
                "genes": list(a.genes),
                "accuracy": float(acc),
                "params": float(par),
            }
            for a, acc, par in zip(self.archs, self.accuracy, self.params, strict=True)
        ]
        # the header indented, one record per line: readable, and diffable line by line
        head = ",\n".join(
            f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in header.items()
        )
        body = ",\n".join("  " + json.dumps(r, allow_nan=False) for r in records)
        path = Path(path)
        write_text_atomic(path, "{\n" + head + ',\n "records": [\n' + body + "\n ]\n}\n")
        return path

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> NASDataset:
        """Read a file written by `save`; every record must be an architecture of ``space``.

        Raises `NasxError` naming the fix for a missing file, a file that is not JSON or not
        a nasx NAS dataset, another format version, another space, or a damaged record.
        """
        p = Path(path)
        if not p.is_file():
            raise NasxError(
                f"NAS dataset {p} does not exist: point to the nas_dataset/nas_dataset.json of "
                f"a run, or build one with stages=[nas_dataset]"
            )
        try:
            content = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NasxError(
                f"NAS dataset {p} is not JSON ({exc}): it is damaged or another kind of file "
                f"(the reference's torch.save lists are not read); {_REBUILD}"
            ) from None
        got = content.get("format") if isinstance(content, dict) else None
        if got != FORMAT:
            raise NasxError(
                f"{p} is not a nasx NAS dataset (format {got!r}, expected {FORMAT!r}): point to "
                f"a nas_dataset.json written by stages=[nas_dataset]"
            )
        if content.get("version") != VERSION:
            raise NasxError(
                f"NAS dataset {p} has format version {content.get('version')!r}, but this nasx "
                f"reads version {VERSION}: {_REBUILD}, or read it with the nasx that wrote it"
            )
        name = space_name(space)
        if content.get("space") != name:
            raise NasxError(
                f"NAS dataset {p} holds architectures of space {content.get('space')!r}, not "
                f"{name!r}: pass the space it was built for, or {_REBUILD} for this space"
            )
        records = content.get("records")
        if not isinstance(records, list) or content.get("n") != len(records):
            raise NasxError(f"NAS dataset {p} is damaged (records missing or cut): {_REBUILD}")
        archs, acc, par = [], [], []
        for i, rec in enumerate(records):
            where = f"NAS dataset {p}, record {i}"
            try:
                genes = tuple(int(g) for g in rec["genes"])
                text, a, n = str(rec["arch"]), float(rec["accuracy"]), float(rec["params"])
            except (KeyError, TypeError, ValueError):
                raise NasxError(
                    f"{where} is damaged (it needs arch, genes, accuracy and params): {_REBUILD}"
                ) from None
            archs.append(arch_of(space, genes, text, where))
            acc.append(a)
            par.append(n)
        if len({space.to_str(a) for a in archs}) != len(archs):
            raise NasxError(f"NAS dataset {p} lists an architecture twice: {_REBUILD}")
        try:
            return cls(
                tuple(archs),
                np.asarray(acc),
                np.asarray(par),
                str(content.get("score_name")),
                name,
                dict(content.get("source") or {}),
            )
        except ValueError as exc:
            raise NasxError(f"NAS dataset {p} is damaged ({exc}): {_REBUILD}") from None


def arch_of(space: SearchSpace, genes: Sequence[int], text: str, where: str) -> Architecture:
    """The architecture with ``genes``, checked to be one of ``space`` and to be ``text``.

    Raises `NasxError` (prefixed by ``where``) when the genes are out of the space's bounds,
    not a valid member (its repair changes them), or not what ``text`` parses to.
    """
    arch = Architecture(tuple(int(g) for g in genes))
    g = np.asarray(arch.genes)
    ok = len(g) == space.n_var and bool(np.all((space.lower <= g) & (g <= space.upper)))
    if ok:
        try:
            ok = space.decode(g) == arch and space.parse(text) == arch
        except NasxError:
            ok = False
    if not ok:
        raise NasxError(
            f"{where}: {text!r} (genes {list(arch.genes)}) is not an architecture of "
            f"{space_name(space)}: pass the space it was built with"
        )
    return arch


def from_evaluations(
    space: SearchSpace,
    archs: Sequence[Architecture],
    scores: Sequence[float] | np.ndarray,
    score_name: str,
    maximize: bool,
    source: dict[str, Any] | None = None,
) -> NASDataset:
    """The dataset of scored architectures; params are counted on each stand-alone network.

    Args:
        space: the space of ``archs``.
        archs: distinct architectures.
        scores: one finite score each (failed evaluations left out by the caller).
        score_name: what the scores are (the metric's name).
        maximize: whether higher scores are better; if not, accuracy is ``-score`` and the
            name gets a leading ``-``.
        source: how the scores were made (stored in the file).
    """
    archs = tuple(archs)
    s = np.asarray(scores, dtype=float).reshape(-1)
    if len(s) != len(archs):
        raise ValueError(f"{len(archs)} architectures but {len(s)} scores")
    if not np.isfinite(s).all():
        raise ValueError("every score must be finite (leave failed evaluations out)")
    if len({space.to_str(a) for a in archs}) != len(archs):
        raise ValueError("the architectures must be distinct")
    if maximize:
        accuracy, name = s, score_name
    else:
        accuracy = -s
        name = score_name[1:] if score_name.startswith("-") else f"-{score_name}"
    params = param_counts(space, archs)
    return NASDataset(archs, accuracy, params, name, space_name(space), dict(source or {}))


def from_table(space: SearchSpace, n: int, seed: int, column: str = DEFAULT_COLUMN) -> NASDataset:
    """``n`` distinct cells drawn uniformly from the space's benchmark table (NAS-Bench-201).

    The draw is ``default_rng(seed).choice`` without replacement over the table's rows, kept
    in table order; each accuracy is the row's ``column`` (a latency column is minimised, so
    it is stored negated).
    """
    every = space.enumerate()
    columns = list(space.ground_truth(every[0])) if every else []
    if every is None or not columns:
        raise NasxError(
            f"a NAS dataset from the table needs a space with a benchmark table, which "
            f"{type(space).__name__} has not: use space=nb201 (or nb201_cpu), or build it from "
            "the metric, a search archive or correlate scores"
        )
    if column not in columns:
        raise NasxError(
            f"column {column!r} is not in {type(space).__name__}'s table: use one of "
            + ", ".join(columns)
        )
    if not 1 <= n <= len(every):
        raise NasxError(
            f"cannot draw {n} distinct architectures from a table of {len(every)}: ask for "
            f"1..{len(every)}"
        )
    rng = np.random.default_rng(seed)
    archs = [every[i] for i in sorted(rng.choice(len(every), size=n, replace=False))]
    scores = [space.ground_truth(a)[column] for a in archs]
    source = {"kind": "table", "column": column, "seed": int(seed), "n": int(n)}
    return from_evaluations(space, archs, scores, column, not column.startswith("latency"), source)


def archive_dir(path: str | Path) -> Path:
    """The ``search/`` directory of a run directory, a ``search/`` dir or an evaluations.jsonl."""
    p = Path(path).expanduser().resolve()
    if p.is_file() and p.name == "evaluations.jsonl":
        return p.parent
    for cand in (p, p / "search"):
        if p.is_dir() and (cand / "evaluations.jsonl").is_file():
            return cand
    raise NasxError(
        f"no search archive at {path}: pass the run directory of an earlier search, its search/ "
        "directory or its search/evaluations.jsonl"
    )


def from_archive(space: SearchSpace, path: str | Path) -> NASDataset:
    """The successful evaluations of an earlier search (see `archive_dir` for ``path``).

    Accuracy is ``-F[0]`` of each record, the search's first objective made higher-is-better
    (its values after the last iteration's rescoring, as `nasx.search_loop.load_records`
    reads them).
    """
    from nasx.search_loop import load_records

    sdir = archive_dir(path)
    try:
        records = load_records(sdir)
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise NasxError(
            f"the search archive in {sdir} is damaged ({exc}): point to another run"
        ) from None
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        raise NasxError(
            f"the search archive in {sdir} holds no successful evaluation: point to a run whose "
            "search finished some"
        )
    where = f"search archive {sdir / 'evaluations.jsonl'}"
    archs = [arch_of(space, r["genes"], r["arch"], where) for r in ok]
    name = _archive_score_name(sdir, ok)
    source = {
        "kind": "archive",
        "path": str(sdir),
        "n_records": len(records),
        "n_failed": len(records) - len(ok),
    }
    return from_evaluations(space, archs, [-float(r["F"][0]) for r in ok], name, True, source)


def _archive_score_name(sdir: Path, ok: list[dict[str, Any]]) -> str:
    """The name of ``-F[0]``: from the last ``iter_<k>.json``, else matched in the records."""
    iters = sorted(sdir.glob("iter_*.json"), key=lambda q: int(q.stem.split("_")[-1]))
    if iters:
        names = json.loads(iters[-1].read_text()).get("objectives") or []
        if names:
            first = str(names[0])
            return first[1:] if first.startswith("-") else f"-{first}"
    for rec in ok:
        f0 = float(rec["F"][0])
        for key, value in rec.get("metric", {}).items():
            if f0 != 0 and isinstance(value, int | float) and float(value) in (f0, -f0):
                return str(key) if float(value) == -f0 else f"-{key}"
    raise NasxError(
        f"cannot tell which metric the search in {sdir} minimised (no iter_<k>.json names it): "
        "let that search finish an iteration, or point to another run"
    )


def scores_file(path: str | Path) -> Path:
    """The ``scores.jsonl`` of a run directory, a ``correlate/`` directory or the file itself."""
    p = Path(path).expanduser().resolve()
    for cand in (p, p / "scores.jsonl", p / "correlate" / "scores.jsonl"):
        if cand.is_file() and cand.suffix == ".jsonl":
            return cand
    raise NasxError(
        f"no correlate scores at {path}: pass the run directory of a correlate stage, its "
        "correlate/ directory or its correlate/scores.jsonl"
    )


def from_scores(space: SearchSpace, path: str | Path) -> NASDataset:
    """The successful scores of a correlate stage (see `scores_file` for ``path``).

    The metric's name and direction come from the ``summary.json`` beside the scores, which
    the stage writes when it finishes.
    """
    file = scores_file(path)
    summary_path = file.parent / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
        metric, higher = str(summary["metric"]), bool(summary["higher_is_better"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise NasxError(
            f"{summary_path} does not name the scores' metric (missing, damaged or not a "
            "correlate summary): let that correlate stage finish (re-run it), or point to "
            "another run's correlate/"
        ) from None
    try:
        records = Journal(file).read()
    except json.JSONDecodeError as exc:
        raise NasxError(f"{file} is damaged ({exc}): point to another run") from None
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        raise NasxError(f"{file} holds no successful score: point to another correlate run")
    archs = [arch_of(space, r["genes"], r["arch"], f"correlate scores {file}") for r in ok]
    source = {
        "kind": "scores",
        "path": str(file),
        "metric": metric,
        "n_records": len(records),
        "n_failed": len(records) - len(ok),
    }
    values = [float(r["metric"][metric]) for r in ok]
    return from_evaluations(space, archs, values, metric, higher, source)


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[Architecture]:
    """``n`` distinct architectures from `SearchSpace.sample` with ``default_rng(seed)``.

    Draws repeat until ``n`` are distinct (NAG de-duplicates its pool the same way, §2.3);
    `NasxError` when ``100 * n`` draws find fewer.
    """
    rng = np.random.default_rng(seed)
    seen: dict[str, Architecture] = {}
    for _ in range(100 * n):
        if len(seen) >= n:
            break
        arch = space.sample(rng)
        seen.setdefault(space.to_str(arch), arch)
    if len(seen) < n:
        raise NasxError(
            f"found only {len(seen)} distinct architectures in {100 * n} draws of "
            f"{type(space).__name__}: ask for fewer"
        )
    return list(seen.values())


def from_metric(
    evaluator: Evaluator,
    archs: Sequence[Architecture],
    journal_path: str | Path,
    source: dict[str, Any] | None = None,
    on_record: Callable[[int, dict[str, Any]], None] | None = None,
) -> NASDataset:
    """Score ``archs`` with the evaluator's metric through a journal; failures are left out.

    A score already in ``journal_path`` is read back instead of recomputed, so a killed build
    resumes where it stopped (`nasx.evaluator.JournaledEvaluation`). ``on_record(i, record)``
    sees every record in order (progress). ``source`` gains the metric, its direction and the
    number of failures. `NasxError` when every evaluation failed.
    """
    from nasx.evaluator import JournaledEvaluation

    space, metric = evaluator.space, evaluator.metric
    journal = Journal(journal_path, fsync_every=64)
    try:
        records = JournaledEvaluation(evaluator, journal, keep=JOURNAL_KEYS)(
            list(archs), on_record=on_record
        )
    finally:
        journal.close()
    by_key = {space.to_str(a): a for a in archs}
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        first = records[0].get("error", "") if records else ""
        raise NasxError(
            f"every architecture failed to score with metric {metric.name} ({first}): see the "
            f"error fields in {journal_path}"
        )
    info = {
        **(source or {}),
        "metric": metric.name,
        "higher_is_better": bool(metric.higher_is_better),
        "n_failed": len(records) - len(ok),
    }
    values = [float(r["metric"][metric.name]) for r in ok]
    archs_ok = [by_key[r["arch"]] for r in ok]
    return from_evaluations(
        space, archs_ok, values, metric.name, bool(metric.higher_is_better), info
    )


__all__ = [
    "DEFAULT_COLUMN",
    "FORMAT",
    "VERSION",
    "NASDataset",
    "arch_of",
    "archive_dir",
    "from_archive",
    "from_evaluations",
    "from_metric",
    "from_scores",
    "from_table",
    "sample_archs",
    "scores_file",
    "space_name",
]
