"""Where per-experiment (or per-batch) Dask tasks run: a local dask scheduler or a ``distributed`` cluster.

Functions that run one task per unit of work (an Allen experiment, a batch of images) take a
``scheduler`` argument, resolved here:

* ``"threads"``, ``"synchronous"`` (serial, for debugging), ``"processes"``: dask's local schedulers;
* ``"local:N"``: a ``distributed.LocalCluster`` of N worker processes, one thread each, started for the
  call and closed after it (worker processes sidestep the GIL that HDF5 decompression holds);
* ``"tcp://host:port"`` (or ``tls://``): the scheduler of a running cluster (a lab cluster, dask-jobqueue,
  Coiled); its workers must see the same files at the same paths and have this package installed;
* a ``distributed.Client`` (used as is, not closed) or any dask ``get`` function.

Tasks are sent paths and ids, never the data: each opens its own files, and only its small results
come back. When a cluster starts, its dashboard address is logged, and printed where progress bars
show (a terminal or a live notebook; not in the built book, see :mod:`neuroalign_utils.progress`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re

from .progress import progress_enabled

logger = logging.getLogger(__name__)

#: dask's local schedulers, accepted by name.
LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")
#: Every form of ``scheduler`` accepted, as error messages list them.
ACCEPTED = (*LOCAL_SCHEDULERS, "local:N (N worker processes)", "tcp://host:port", "a distributed.Client")
_LOCAL_CLUSTER = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"(tcp|tls)://\S+:\d+")


def check_scheduler(scheduler, name: str = "scheduler"):
    """Validate ``scheduler`` (see module docstring) before any work; return it unchanged.

    Raises
    ------
    ValueError
        For a string that is none of the accepted forms (the message names ``name`` and lists them), or
        ``"local:0"``.
    ImportError
        For ``"local:N"`` or an address where ``distributed`` is not installed.
    """
    if not isinstance(scheduler, str):
        if scheduler is None or not callable(getattr(scheduler, "get", scheduler)):
            raise ValueError(f"'{name}' must be one of {list(ACCEPTED)}; {scheduler!r} was provided.")
        return scheduler
    local = _LOCAL_CLUSTER.fullmatch(scheduler)
    if scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if not (local or _ADDRESS.fullmatch(scheduler)):
        raise ValueError(f"'{name}' must be one of {list(ACCEPTED)}; {scheduler!r} was provided.")
    if local and int(local.group(1)) < 1:
        raise ValueError(f"'{name}' = {scheduler!r} asks for no worker; use 'local:1' or more.")
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"{name}={scheduler!r} needs the 'distributed' package (pip install distributed), or use {name}='threads'."
        ) from err
    return scheduler


def is_cluster(scheduler) -> bool:
    """Whether ``scheduler`` (resolved or not) runs tasks on a ``distributed`` cluster."""
    if isinstance(scheduler, str):
        return scheduler not in LOCAL_SCHEDULERS
    return type(scheduler).__name__ == "Client"


@contextlib.contextmanager
def dask_scheduler(scheduler="threads", *, name: str = "scheduler"):
    """Resolve ``scheduler`` for the duration of a ``with`` block: what ``dask.compute(scheduler=…)`` takes.

    ``"local:N"`` starts a ``LocalCluster`` of N single-threaded worker processes and a ``Client`` on it,
    and closes both on exit; an address connects a ``Client`` (closed on exit, the cluster left running);
    anything else is yielded unchanged. Several calls inside one block share the cluster::

        with dask_scheduler("local:2") as client:
            dff = load_responses(cache, ids, scheduler=client, compute=False)
            traces, responses = scene_traces_and_trial_responses(dff, scheduler=client)
    """
    check_scheduler(scheduler, name)
    if not isinstance(scheduler, str) or scheduler in LOCAL_SCHEDULERS:
        yield scheduler
        return
    import dask
    from distributed import Client, LocalCluster

    local = _LOCAL_CLUSTER.fullmatch(scheduler)
    with contextlib.ExitStack() as stack:
        if local:
            # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
            # threshold at 128 kB: every NumPy temporary of a task is then fresh pages from the system,
            # and the workers spent two thirds as much CPU time in the kernel as in NumPy. Our tasks
            # free what they allocate, so the workers keep glibc's defaults (distributed also leaves the
            # variable in this process's environment once any cluster started here: not inherited).
            inherited = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            try:
                with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                    cluster = stack.enter_context(
                        LocalCluster(
                            n_workers=int(local.group(1)),
                            threads_per_worker=1,  # one task per process: HDF5 decompression holds the GIL
                            processes=True,
                            dashboard_address=":0",  # any free port: several clusters may run on one machine
                            silence_logs=logging.ERROR,
                        )
                    )
            finally:
                if inherited is not None:
                    os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        announce_dashboard(client)
        yield client


def announce_dashboard(client) -> None:
    """Log the cluster's dashboard address; print it too where progress bars show (not in the built book)."""
    link = client.dashboard_link
    logger.info("Dask dashboard: %s", link)
    if progress_enabled():
        print(f"Dask dashboard: {link}")


def compute(
    tasks, scheduler, *, progress: bool = True, desc: str = "tasks", batch: int | None = None, sizes=None
) -> list:
    """Run a list of ``dask.delayed`` tasks on a resolved ``scheduler``; their results, in order.

    On a ``distributed`` client one task per worker thread is in flight, and the next is submitted as
    one finishes: a worker never reads a second experiment before it has reduced the first, so each
    holds one at a time; with ``sizes`` (relative costs, e.g. cells per experiment) the largest go first,
    so the last to finish is a small one and no worker waits long for another. On a local scheduler
    they run ``batch`` at a time (all at once when ``None``), since dask's local schedulers start the
    next tasks' reads before the last results are consumed. A bar counts finished tasks.
    """
    import dask

    from .progress import progress_bar

    tasks = list(tasks)
    results = [None] * len(tasks)
    with progress_bar(total=len(tasks), enabled=progress, desc=desc, leave=False) as bar:
        if is_cluster(scheduler):
            from distributed import as_completed

            order = iter(sorted(range(len(tasks)), key=lambda i: -sizes[i]) if sizes is not None else range(len(tasks)))
            position = {}

            def submit(i):
                future = scheduler.compute(tasks[i])
                position[future.key] = i
                return future

            slots = max(1, sum(scheduler.nthreads().values()))
            running = as_completed([submit(i) for _, i in zip(range(slots), order)], with_results=True)
            for future, result in running:
                results[position[future.key]] = result
                bar.update()
                following = next(order, None)
                if following is not None:
                    running.add(submit(following))
        else:
            step = batch or max(len(tasks), 1)
            for first in range(0, len(tasks), step):
                part = dask.compute(*tasks[first : first + step], scheduler=scheduler)
                results[first : first + len(part)] = part
                bar.update(len(part))
    return results
