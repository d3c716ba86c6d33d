"""Search-level logging through the run's Lightning logger (W&B, CSV, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger


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
        metrics: dict[str, float] = {
            "search/iteration": summary["iteration"],
            "search/n_evals": summary["n_evals"],
            "search/n_failed": summary["n_failed"],
            "search/hv": summary["hv"],
            "search/hv_raw": summary["hv_raw"],
        }
        fit = summary.get("surrogate")
        if fit:  # MSuNAS: the surrogate's fit quality, as in iter_<k>.json
            metrics.update({f"surrogate/{k}": fit[k] for k in ("rmse", "rho", "tau")})
        if "alpha_norm" in summary:  # FlatNAS top1_robust scale
            metrics["search/alpha_norm"] = summary["alpha_norm"]
        best = summary.get("best")
        if best is not None:
            metrics[f"search/best_{self.metric_name}"] = best["metric"][self.metric_name]
            for name, value in best["objectives"].items():
                metrics[f"search/best_{name}"] = value
        self.logger.log_metrics(metrics)
        self.logger.save()  # file loggers (CSV) buffer until saved; training already finalised

    def archive(self, records: list[dict[str, Any]], plots: list[Path]) -> None:
        """Log the archive as a table and the plots as images (W&B only; CSV has the files)."""
        if not isinstance(self.logger, WandbLogger) or not records:
            return
        ok = [r for r in records if not r.get("failed")]
        if ok:
            metric_keys = sorted(ok[0]["metric"])
            cost_keys = sorted(ok[0]["objectives"])
            columns = ["arch", *metric_keys, *cost_keys]
            data = [
                [
                    r["arch"],
                    *(r["metric"][k] for k in metric_keys),
                    *(r["objectives"][k] for k in cost_keys),
                ]
                for r in ok
            ]
            self.logger.log_table("search/archive", columns=columns, data=data)
        for p in plots:
            self.logger.log_image(f"plots/{p.stem}", images=[str(p)])

    def finish(self) -> None:
        """Close the W&B run, even after an error (one crashed job must not break a sweep)."""
        if isinstance(self.logger, WandbLogger):
            import wandb

            wandb.finish()
