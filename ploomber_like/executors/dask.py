"""The ``dask`` executor: points run on a Dask cluster, given as a ``Client`` or an address.

Records come back to the driver, which writes them: workers never open the database.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ploomber_like.errors import TrackerError
from ploomber_like.executors.remote import RemoteExecutor
from ploomber_like.executors.worker import execute_remote, request_stop
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Record

if TYPE_CHECKING:
    from distributed import Client

#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0
#: Seconds the driver waits for workers to acknowledge a stop request after Ctrl-C.
STOP_TIMEOUT = 10.0
#: Seconds between checks that the scheduler is still connected while waiting for runs.
CONNECTION_POLL_INTERVAL = 0.05


def connect_dask(address: str, *, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A Dask client connected to the scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``tcp://10.0.0.5:8786``.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    distributed.Client

    Raises
    ------
    TrackerError
        If ``distributed`` is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:
        raise TrackerError(
            "Dask sweeps need the [dask] extra: pip install 'ploomber-like[dask]'"
        ) from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackerError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


class DaskExecutor(RemoteExecutor):
    """Runs points on a Dask cluster: a ``distributed.Client``, or a scheduler address (str).

    A client made here from an address is closed with the executor; one passed in is the
    caller's. Each worker thread runs one point at a time, in a kernel of its own.
    """

    name = "dask"

    @classmethod
    def accepts(cls, target: Any) -> bool:
        if isinstance(target, str):
            return target != "local"  # any other string is a scheduler address
        try:
            from distributed import Client
        except ImportError:
            return False
        return isinstance(target, Client)

    def __init__(self, target: Any, options: Any) -> None:
        self._own_client = isinstance(target, str)
        self.client = connect_dask(target) if self._own_client else target
        from distributed import as_completed

        self._completed = as_completed()
        self.address = getattr(self.client.scheduler, "address", None) or "its address"
        super().__init__(target, options)

    def default_workers(self) -> int:
        """The cluster's threads: one point at a time on each."""
        return max(1, sum(self.client.nthreads().values()))

    def submit_call(self, run: PreparedRun, record: Record) -> Any:
        self._check_connected()
        # threads=None: each worker shares its machine's cores among its own threads.
        future = self.client.submit(
            execute_remote, run, record, self.options.timeout, self.options.preload, None,
            key=f"ploomber-like-{run.path.stem}-{record.uuid}", pure=False,
        )
        self._completed.add(future)
        return future

    def wait_futures(self, futures: list[Any], timeout: float | None) -> list[Any]:
        # Polled rather than blocking: a client that lost its scheduler may never complete a
        # future submitted after the loss, and the sweep must end instead of hanging.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._completed.has_ready():
            self._check_connected()
            if deadline is not None and time.monotonic() >= deadline:
                return []
            time.sleep(CONNECTION_POLL_INTERVAL)
        return self._completed.next_batch(block=False)

    def cancel_futures(self, futures: list[Any]) -> None:
        if futures:
            self.client.cancel(futures)

    def stop_runs(self, uuids: list[str]) -> None:
        if not uuids or self.client.status != "running":
            return
        # A worker that does not answer must not keep Ctrl-C from ending the driver.
        asking = threading.Thread(
            target=self.client.run, args=(request_stop, uuids), kwargs={"on_error": "ignore"},
            daemon=True,
        )
        asking.start()
        asking.join(STOP_TIMEOUT)

    def is_lost_worker(self, exc: BaseException) -> bool:
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def _check_connected(self) -> None:
        if self.client.status in ("closing", "closed"):
            raise TrackerError(f"lost the connection to the Dask scheduler at {self.address}")
