"""An event loop whose end cannot block the process: daemon worker threads, bounded shutdown.

``asyncio.run`` waits for the default executor's threads with no time limit (Python 3.11), and
the interpreter joins ThreadPoolExecutor threads at exit: one DNS lookup or blocking call stuck
in such a thread hangs the process after its report. Here every executor call runs in a daemon
thread, and tasks left over at the end get a bounded time to finish after being cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any

SHUTDOWN_S = 3.0
"""How long tasks left over at the end of a run get to finish after being cancelled."""


class DaemonExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: each call in a daemon thread that never blocks the exit.

    ``asyncio.run`` waits for the default ThreadPoolExecutor's threads with no limit, and the
    interpreter joins them at exit: a DNS lookup or a blocking call stuck in one would hang the
    process. Daemon threads are abandoned at exit instead. (It subclasses ThreadPoolExecutor
    only because asyncio accepts nothing else as a default executor; no pool thread starts.)
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=work, name="wsdoctor-worker", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: the threads are daemons."""


def run_bounded(main: Coroutine[Any, Any, Any], shutdown_s: float = SHUTDOWN_S) -> Any:
    """Like ``asyncio.run``, but the shutdown waits at most ``shutdown_s`` for leftovers."""
    try:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(DaemonExecutor())
    except BaseException:
        main.close()
        raise
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=shutdown_s))
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), shutdown_s))
        except (TimeoutError, RuntimeError):
            pass
        finally:
            asyncio.set_event_loop(None)
            loop.close()
