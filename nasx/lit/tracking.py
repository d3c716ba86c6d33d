"""Search-level logging through the run's Lightning logger (W&B, CSV, ...).

Every logger gets the scalar numbers of each iteration (the same as ``search/iter_<k>.json``);
W&B also gets the archive as a table, the Pareto front as a scatter chart, the run's plots and
the selected architectures with their cell diagrams (the same as ``final/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger

#: the fit-quality numbers of a surrogate report (`nasx.surrogate.base.fit_quality`)
FIT_KEYS = ("rmse", "rho", "tau")


class SearchTracker:
    """Sends the search's numbers, tables and plots to the same logger as supernet training.

    Args:
        logger: a Lightning logger, or ``None`` to log nothing.
        metric_name: the metric's name (for the ``search/best_<metric>`` key).
    """

    def __init__(self, logger: Logger | None, metric_name: str) -> None:
        self.logger, self.metric_name = logger, metric_name

    def iteration(self, summary: dict[str, Any]) -> None:
        """Log one iteration's hypervolume, budget used, best score and surrogate fit."""
        if self.logger is None:
            return
        self.logger.log_metrics(iteration_metrics(summary, self.metric_name))
        self.logger.save()  # file loggers (CSV) buffer until saved; training already finalised

    def archive(
        self, records: list[dict[str, Any]], plots: list[Path], objective_names: list[str]
    ) -> None:
        """Log the archive as a table, the Pareto front as a scatter, the plots as images.

        W&B only; the CSV logger has the per-iteration numbers and the run directory the files.
        """
        if not isinstance(self.logger, WandbLogger) or not records:
            return
        columns, data = archive_table(records)
        self.logger.log_table("search/archive", columns=columns, data=data)
        metric = objective_names[0].lstrip("-")
        costs = [n for n in objective_names[1:] if n in columns]
        if costs and metric in columns:
            import wandb

            table = wandb.Table(columns=list[str | int](columns), data=data)
            chart = wandb.plot.scatter(
                table, costs[0], metric, title=f"{metric} vs {costs[0]} (every evaluation)"
            )
            self.logger.experiment.log({"search/pareto_scatter": chart})
        for p in plots:
            self.logger.log_image(f"plots/{p.stem}", images=[str(p)])

    def selection(self, selected: list[dict[str, Any]]) -> None:
        """Log the selected architectures, each with its cell diagram (W&B only).

        ``selected`` holds one dict per architecture: ``name``, ``arch``, ``reasons``,
        ``metric``, ``objectives`` and ``diagram`` (a PNG path, or ``None``).
        """
        if not isinstance(self.logger, WandbLogger) or not selected:
            return
        import wandb

        metric_keys = sorted({k for s in selected for k in (s.get("metric") or {})})
        cost_keys = sorted({k for s in selected for k in (s.get("objectives") or {})})
        columns = ["name", "arch", "reasons", *metric_keys, *cost_keys, "diagram"]
        rows = []
        for s in selected:
            image = wandb.Image(str(s["diagram"])) if s.get("diagram") else None
            rows.append(
                [
                    s["name"],
                    s["arch"],
                    "+".join(s.get("reasons", ())),
                    *((s.get("metric") or {}).get(k) for k in metric_keys),
                    *((s.get("objectives") or {}).get(k) for k in cost_keys),
                    image,
                ]
            )
        self.logger.experiment.log({"final/selected": wandb.Table(columns=columns, data=rows)})
        for s in selected:
            if s.get("diagram"):
                self.logger.log_image(
                    f"final/{s['name']}", images=[str(s["diagram"])], caption=[s["arch"]]
                )

    def report(
        self, rows: list[dict[str, Any]], groups: list[dict[str, Any]], figures: list[Path]
    ) -> None:
        """Log a sweep report: its per-job and per-group tables and its figures (W&B only)."""
        if not isinstance(self.logger, WandbLogger):
            return
        for key, table in (("report/summary", rows), ("report/methods", groups)):
            if table:
                columns = list(dict.fromkeys(k for r in table for k in r))
                data = [[r.get(c) for c in columns] for r in table]
                self.logger.log_table(key, columns=columns, data=data)
        for p in figures:
            self.logger.log_image(f"report/{p.stem}", images=[str(p)])

    def finish(self) -> None:
        """Close the W&B run, even after an error (one crashed job must not break a sweep)."""
        if isinstance(self.logger, WandbLogger):
            import wandb

            wandb.finish()


def iteration_metrics(summary: dict[str, Any], metric_name: str) -> dict[str, float]:
    """The scalar numbers of one ``iter_<k>.json`` summary, as logged keys."""
    metrics: dict[str, float] = {
        "search/iteration": summary["iteration"],
        "search/n_evals": summary["n_evals"],
        "search/n_failed": summary["n_failed"],
        "search/hv": summary["hv"],
        "search/hv_raw": summary["hv_raw"],
    }
    if "n_feasible" in summary:
        metrics["search/n_feasible"] = summary["n_feasible"]
    fit = summary.get("surrogate")
    if fit:  # MSuNAS: the surrogate's fit quality, as in iter_<k>.json
        metrics.update({f"surrogate/{k}": fit[k] for k in FIT_KEYS if k in fit})
    for sec in summary.get("sec_surrogate") or []:  # CNAS: one predictor per measured cost
        metrics.update({f"surrogate/{sec['name']}/{k}": sec[k] for k in FIT_KEYS if k in sec})
    if "alpha_norm" in summary:  # FlatNAS top1_robust scale
        metrics["search/alpha_norm"] = summary["alpha_norm"]
    best = summary.get("best")
    if best is not None:
        metrics[f"search/best_{metric_name}"] = best["metric"][metric_name]
        for name, value in best["objectives"].items():
            metrics[f"search/best_{name}"] = value
    return metrics


def archive_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` of the evaluated (not failed) records.

    Columns: ``arch``, the metric values, the costs, ``feasible`` and ``iteration``.
    """
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        return ["arch"], []
    metric_keys = sorted(ok[0]["metric"])
    cost_keys = sorted(ok[0]["objectives"])
    columns = ["arch", *metric_keys, *cost_keys, "feasible", "iteration"]
    data = [
        [
            r["arch"],
            *(r["metric"].get(k) for k in metric_keys),
            *(r["objectives"].get(k) for k in cost_keys),
            bool(r.get("feasible", True)),
            r.get("iteration"),
        ]
        for r in ok
    ]
    return columns, data
