"""Distributed candidate evaluation on Ray (``evaluator.backend=ray``).

`RayEvaluator` is an `nasx.evaluator.Evaluator` whose `evaluate_iter` spreads each batch over
Ray worker actors and yields the records in order, so `nasx.evaluator.JournaledEvaluation`
journals them exactly as it does the sequential backend's (resume, ``search/failed/`` and
progress are unchanged). Each worker builds its evaluation context once: the supernet weights
and the set-up data are put once in Ray's object store (`ray.put`) and read once by each
worker, and the metric is rebuilt only when its state changes on the driver (`Metric.rescore`).
Scores depend only on the run seed and the architecture (`nasx.evaluator.arch_generator`), so
the records equal the sequential backend's.

A worker that dies is restarted by Ray and its candidate goes back to the queue, for the next
free worker, up to ``max_retries`` times; after that it is recorded as failed. An evaluation
that raises is recorded as failed inside the worker, as the sequential backend does.

Ray is imported lazily: importing this module does not import it (``pip install nasx[scale]``).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.evaluator import FAILED_VALUE, Evaluator
from nasx.metric.base import EvalRunner, Metric, MetricContext
from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace
from nasx.supernet.base import Supernet

log = logging.getLogger(__name__)

#: the values of ``evaluator.backend``
BACKENDS = ("local", "ray")
#: readiness probes of a restarting worker before it is given up (one per PROBE_WAIT_S)
MAX_PROBES = 600
PROBE_WAIT_S = 0.2
#: accelerators that put evaluation on a GPU (`nasx.lit.evaluation.LightningRunner`)
GPU_ACCELERATORS = ("gpu", "cuda")


@dataclass(frozen=True)
class RaySettings:
    """How the Ray backend places its workers (the ``evaluator`` config node).

    Args:
        address: ``None`` starts a local cluster (stopped at the end of the run); ``auto`` or
            ``host:port`` joins a running one (``ray start --head``), which is left running.
        num_workers: worker actors, each evaluating one candidate at a time.
        gpus_per_worker: GPUs each worker holds (fractions share a GPU).
        cpus_per_worker: CPUs each worker holds (also its torch thread count, at least 1).
        max_retries: how many times a candidate whose worker died is run again.
    """

    address: str | None = None
    num_workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_retries: int = 3


def check_settings(backend: str, settings: RaySettings, accelerator: str) -> None:
    """Refuse settings the backend cannot run, with one line naming the fix.

    Runs before any work: the backend name, the ranges, Ray being installed, and GPUs against
    ``accelerator`` (the ``trainer=`` preset's, which the workers evaluate with) and, for a
    local cluster, against this machine's GPUs.
    """
    if backend not in BACKENDS:
        raise NasxError(f"evaluator.backend={backend}: not a backend; use one of local, ray")
    if backend == "local":
        return
    if importlib.util.find_spec("ray") is None:
        raise NasxError(
            "evaluator.backend=ray needs Ray, which is not installed: pip install nasx[scale] "
            "(or evaluator.backend=local)"
        )
    s = settings
    if s.num_workers < 1:
        raise NasxError(f"evaluator.num_workers={s.num_workers}: use at least 1 worker")
    if s.cpus_per_worker <= 0:
        raise NasxError(f"evaluator.cpus_per_worker={s.cpus_per_worker}: use a value > 0")
    if s.gpus_per_worker < 0:
        raise NasxError(f"evaluator.gpus_per_worker={s.gpus_per_worker}: use a value >= 0")
    if s.max_retries < 0:
        raise NasxError(f"evaluator.max_retries={s.max_retries}: use a value >= 0")
    if s.address is not None and not str(s.address).strip():
        raise NasxError(
            "evaluator.address is empty: pass auto (a running cluster), host:port, or null"
        )
    on_gpu = accelerator in GPU_ACCELERATORS
    if on_gpu and s.gpus_per_worker == 0:
        raise NasxError(
            f"trainer evaluates on {accelerator} but evaluator.gpus_per_worker=0 gives the Ray "
            "workers no GPU: set evaluator.gpus_per_worker=1 (or trainer=cpu)"
        )
    if s.gpus_per_worker > 0 and not on_gpu:
        raise NasxError(
            f"evaluator.gpus_per_worker={s.gpus_per_worker} but the trainer evaluates on "
            f"{accelerator}: use trainer=gpu, or evaluator.gpus_per_worker=0"
        )
    if s.gpus_per_worker > 0 and s.address is None:
        have = torch.cuda.device_count()
        if have < s.gpus_per_worker * s.num_workers:
            raise NasxError(
                f"evaluator.num_workers={s.num_workers} x gpus_per_worker={s.gpus_per_worker} "
                f"needs more GPUs than this machine's {have}: lower them, or join a cluster "
                "with evaluator.address=auto"
            )


def _ray() -> Any:
    """The ``ray`` module (imported on first use only)."""
    import ray

    return ray


class RayCluster:
    """The run's connection to Ray: joins ``settings.address`` or starts a local cluster.

    An already initialised Ray (a notebook, a test session) is used as it is and left running;
    `shutdown` stops only a cluster this object started.

    Args:
        settings: the backend settings.
    """

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.started = False
        self.connected = False

    def connect(self) -> Any:
        """Connect (once) and check the cluster can hold every worker; returns ``ray``."""
        ray = _ray()
        if self.connected:
            return ray
        s = self.settings
        if not ray.is_initialized():
            opts: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
            }
            if s.address is not None:
                try:
                    ray.init(address=str(s.address), **opts)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise NasxError(
                        f"cannot join the Ray cluster at evaluator.address={s.address} ({exc}): "
                        "start one with `ray start --head`, or pass evaluator.address=null for "
                        "a local cluster"
                    ) from exc
            else:
                need = s.num_workers * s.cpus_per_worker
                ray.init(num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), **opts)
                self.started = True
        self.connected = True
        total = ray.cluster_resources()
        for name, per_worker in (("CPU", s.cpus_per_worker), ("GPU", s.gpus_per_worker)):
            have = float(total.get(name, 0.0))
            if per_worker > 0 and have < per_worker * s.num_workers:
                self.shutdown()
                raise NasxError(
                    f"the Ray cluster has {have:g} {name}s, too few for evaluator.num_workers="
                    f"{s.num_workers} x {name.lower()}s_per_worker={per_worker:g}: lower them "
                    "or add nodes"
                )
        return ray

    def shutdown(self) -> None:
        """Stop the local cluster this object started (a joined cluster keeps running)."""
        if self.started:
            _ray().shutdown()
            self.started = False
        self.connected = False


@dataclass
class WorkerPayload:
    """What every worker builds its evaluation context from (put once in the object store).

    Attributes:
        space: the search space.
        costs: the costs, minimised.
        seed: run seed.
        supernet: the trained supernet on the CPU (moved to the worker's device there).
        data: the dataset, already set up.
        init_state: supernet weights before training (``None``: not loaded).
        make_runner: builds the worker's evaluation runner (its device comes from it).
    """

    space: SearchSpace
    costs: Sequence[Objective]
    seed: int
    supernet: Supernet | None
    data: ImageData
    init_state: Mapping[str, torch.Tensor] | None
    make_runner: Callable[[], EvalRunner]


class EvaluationWorker:
    """One Ray actor: an evaluation context built once, then one candidate per call.

    Args:
        shared: a one-element list holding the object reference of the `WorkerPayload` (in a
            list, so that a restarted worker fetches it again from the object store).
        threads: torch threads of this worker.
    """

    def __init__(self, shared: list[Any], threads: int) -> None:
        torch.set_num_threads(max(1, threads))
        payload: WorkerPayload = _ray().get(shared[0])
        runner = payload.make_runner()
        device = torch.device(getattr(runner, "device", "cpu"))
        supernet = payload.supernet.to(device) if payload.supernet is not None else None
        self.payload = payload
        self.ctx = MetricContext(
            space=payload.space,
            supernet=supernet,
            data=payload.data,
            runner=runner,
            init_state=payload.init_state,
            device=device,
        )
        self.evaluator: Evaluator | None = None
        self.metric_version = -1

    def ready(self) -> int:
        """The worker's pid, once its context is built."""
        return os.getpid()

    def evaluate(self, arch: Architecture, version: int, metric: list[Any]) -> dict[str, Any]:
        """The record of ``arch``; ``metric`` holds a reference to the driver's metric.

        The metric is fetched only when ``version`` changes (the first call, a rescore).
        """
        if self.evaluator is None or version != self.metric_version:
            current: Metric = _ray().get(metric[0])
            p = self.payload
            self.evaluator = Evaluator(p.space, current, p.costs, self.ctx, p.seed)
            self.metric_version = version
        return self.evaluator(arch)


class RayEvaluator(Evaluator):
    """An `Evaluator` that spreads each batch over Ray workers; same records, same order.

    Workers start on the first batch and live until `close`. Arguments as `Evaluator`, plus:

    Args:
        cluster: the run's Ray connection (shared by its evaluators).
        make_runner: builds a worker's evaluation runner (picklable).
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: Metric,
        costs: Sequence[Objective],
        ctx: MetricContext,
        seed: int,
        cluster: RayCluster,
        make_runner: Callable[[], EvalRunner],
    ) -> None:
        super().__init__(space, metric, costs, ctx, seed)
        self.cluster, self.make_runner = cluster, make_runner
        self.workers: list[Any] = []
        self._payload: Any = None
        self._metric_blob: bytes | None = None
        self._metric_ref: Any = None
        self._metric_version = -1

    @property
    def settings(self) -> RaySettings:
        """The backend settings."""
        return self.cluster.settings

    def start(self) -> None:
        """Start the workers (once): the context goes once into the object store."""
        if self.workers:
            return
        ray = self.cluster.connect()
        supernet = self.ctx.supernet
        if supernet is not None and any(p.device.type != "cpu" for p in supernet.parameters()):
            supernet = copy.deepcopy(supernet).cpu()
        payload = WorkerPayload(
            space=self.space,
            costs=list(self.costs),
            seed=self.seed,
            supernet=supernet,
            data=self.ctx.data,
            init_state=self.ctx.init_state,
            make_runner=self.make_runner,
        )
        self._payload = ray.put(payload)
        s = self.settings
        actor = ray.remote(EvaluationWorker).options(
            num_cpus=s.cpus_per_worker,
            num_gpus=s.gpus_per_worker,
            max_restarts=-1,  # a dead worker comes back; its candidate's retries are counted here
            max_task_retries=0,
        )
        threads = max(1, int(s.cpus_per_worker))
        self.workers = [actor.remote([self._payload], threads) for _ in range(s.num_workers)]
        try:
            pids = ray.get([w.ready.remote() for w in self.workers])
        except Exception as exc:
            self.close()
            raise NasxError(
                f"a Ray worker could not build its evaluation context: {_reason(exc)} (it must "
                "be able to import nasx and the metric's module)"
            ) from exc
        log.info("ray: %d evaluation workers ready (pids %s)", len(pids), pids)

    def _metric(self) -> tuple[int, Any]:
        """``(version, reference)`` of the driver's metric, put again when its state changed."""
        blob = pickle.dumps(self.metric)
        if blob != self._metric_blob:
            self._metric_blob = blob
            self._metric_ref = _ray().put(self.metric)
            self._metric_version += 1
        return self._metric_version, self._metric_ref

    def evaluate_iter(self, archs: Sequence[Architecture]) -> Iterator[dict[str, Any]]:
        """The records of ``archs`` in order, each yielded once it and those before are done.

        Candidates go to workers as they become free; one whose worker died goes back to the
        front of the queue, up to ``max_retries`` times, and is then recorded as failed.
        """
        if not archs:
            return
        self.start()
        ray = _ray()
        version, ref = self._metric()
        queue, idle = deque(range(len(archs))), deque(range(len(self.workers)))
        # task -> (candidate position, or -1 for a readiness probe of a restarting worker; worker)
        pending: dict[Any, tuple[int, int]] = {}
        deaths = [0] * len(archs)
        probes = [0] * len(self.workers)
        done: dict[int, dict[str, Any]] = {}
        nxt = 0
        while nxt < len(archs):
            while queue and idle:
                pos, w = queue.popleft(), idle.popleft()
                task = self.workers[w].evaluate.remote(archs[pos], version, [ref])
                pending[task] = (pos, w)
            if not pending:
                raise NasxError(
                    "every Ray evaluation worker is gone (restarts keep failing): see the Ray "
                    "logs, or use evaluator.backend=local"
                )
            ready, _ = ray.wait(list(pending), num_returns=1)
            for task in ready:
                pos, w = pending.pop(task)
                try:
                    result = ray.get(task)
                except ray.exceptions.RayActorError as exc:
                    # a worker gets a candidate only once it answered (start, probe), so a
                    # candidate's error means its worker died running it: the candidate waits
                    # for the next free worker, this one for a probe answered after its restart
                    if pos >= 0:
                        deaths[pos] += 1
                        log.warning("ray: worker died evaluating %s", self.space.to_str(archs[pos]))
                    if pos >= 0 and deaths[pos] > self.settings.max_retries:
                        done[pos] = self._died(archs[pos], deaths[pos], exc)
                    elif pos >= 0:
                        queue.appendleft(pos)
                    probes[w] += 1
                    if probes[w] <= MAX_PROBES:
                        time.sleep(PROBE_WAIT_S if pos < 0 else 0.0)
                        pending[self.workers[w].ready.remote()] = (-1, w)
                    continue
                except ray.exceptions.RayError as exc:  # not an Exception in the worker
                    result = self._failed(archs[pos], _reason(exc)) if pos >= 0 else None
                probes[w] = 0
                idle.append(w)
                if pos >= 0:
                    done[pos] = result
            while nxt in done:
                yield done.pop(nxt)
                nxt += 1

    def _died(self, arch: Architecture, deaths: int, exc: Exception) -> dict[str, Any]:
        """The failure record of a candidate whose workers kept dying."""
        return self._failed(
            arch,
            f"WorkerDied: the Ray worker died {deaths} times evaluating it "
            f"(evaluator.max_retries={self.settings.max_retries}): {_reason(exc)}",
        )

    def _failed(self, arch: Architecture, error: str) -> dict[str, Any]:
        """A failure record shaped as `Evaluator`'s."""
        return {
            "arch": self.space.to_str(arch),
            "genes": list(arch.genes),
            "failed": True,
            "error": error,
            "F": [FAILED_VALUE] * self.n_obj,
            "G": [FAILED_VALUE] * self.n_constr,
        }

    def close(self) -> None:
        """Stop the workers (the cluster stays; `RayCluster.shutdown` stops a local one)."""
        if self.workers:
            ray = _ray()
            if ray.is_initialized():
                for w in self.workers:
                    ray.kill(w)
            self.workers = []
        self._payload = self._metric_ref = self._metric_blob = None
        self._metric_version = -1


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (Ray's carry a traceback)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
