"""Independent work shared between this process and forked helpers, one per spare core.

Helpers start at once and take chunks of the work from a shared counter; this process joins
in when it has done what it had to do meanwhile (`plan` loads the state), so whichever process
is free takes the next chunk and no core waits for another. Only the helpers' results cross a
pipe: what this process computes itself is never copied.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import queue
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

T = TypeVar("T")
R = TypeVar("R")

CHUNKS_PER_PROCESS = 16
"""Small enough that the processes finish within a chunk of each other."""

MOST_PER_CHUNK = 256
"""A chunk's results are held whole by the helper that made them, until sent, and by this
process, until taken: a bigger repo makes more chunks, not bigger ones."""


_REDUCERS: dict[type, Callable[[Any], Any] | None] = {}
"""How each kind of object a helper sends is reduced, if not pickle's default way."""


def _reducer(kind: type) -> Callable[[Any], Any] | None:
    """Dataclasses travel as their class and field values, rebuilt by their `__init__`: the
    default way, a state set field by field through `dataclasses.fields`, takes twice as long
    on both ends (most of what a helper's results cost to send). Pydantic models (a typed plan's
    spec) travel as their fields, without the state pickle's default way asks them to build."""
    if dataclasses.is_dataclass(kind):
        fields = dataclasses.fields(kind)
        if not all(field.init and not field.kw_only for field in fields):
            return None
        get = attrgetter(*(field.name for field in fields))
        if len(fields) == 1:
            return lambda obj: (kind, (get(obj),))
        return lambda obj: (kind, get(obj))
    pydantic = sys.modules.get("pydantic")  # loaded if there are models to send
    if pydantic is not None and issubclass(kind, pydantic.BaseModel):
        return _model_fields
    return None


def _model_fields(model: Any) -> Any:
    if model.__pydantic_extra__ is not None or model.__pydantic_private__ is not None:
        return NotImplemented
    return _model, (type(model), model.__dict__, model.__pydantic_fields_set__)


def _model(kind: Any, values: dict[str, Any], fields_set: set[str]) -> Any:
    """A pydantic model as its `__setstate__` rebuilds it from pickle's default state."""
    model = kind.__new__(kind)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", fields_set)
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _dumps(value: Any) -> bytes:
    """`value` pickled, the objects `_reducer` knows the cheaper way."""
    import pickle  # noqa: PLC0415 (helpers only: a small repo's run never loads it)

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            kind = type(obj)
            try:
                reduce = _REDUCERS[kind]
            except KeyError:
                reduce = _REDUCERS[kind] = _reducer(kind)
            return NotImplemented if reduce is None else reduce(obj)

    buffer = io.BytesIO()
    Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def cores() -> int:
    """The cores this process may run on (its affinity, where the system says), not the
    machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _can_fork() -> bool:
    # A process that runs other threads can fork with one of their locks held, forever, in the
    # child; and macOS's system libraries do not survive a fork.
    return hasattr(os, "fork") and sys.platform != "darwin" and threading.active_count() == 1


def _send(outbox: queue.SimpleQueue[bytes | None], sending: Connection) -> None:
    """A helper's results to the process that forked it, in the order they were done, until
    None; a process that stopped reading (it ended, or stopped its helpers) ends the sending."""
    while (data := outbox.get()) is not None:
        try:
            sending.send_bytes(data)
        except OSError:
            return


class Shared(Generic[T, R]):
    """`work` over `items` in chunks, results in the order of the items.

    Helpers are forked only when each process would get at least `per_process` items (below
    that, starting one costs more than it saves) and forking is safe; otherwise `results`
    does all the work here. A helper that fails or dies leaves its chunks to this process, which
    then raises whatever `work` raises, as if it had done everything itself.
    """

    def __init__(
        self, work: Callable[[Sequence[T]], R], items: Sequence[T], *, per_process: int
    ) -> None:
        self._work = work
        self._helpers: list[BaseProcess] = []
        self._pipes: list[Connection] = []
        """From the helpers still running."""
        self._done: dict[int, R] = {}
        """Results not given yet, by chunk."""
        self._next = 0
        """The next chunk, when there are no helpers to share a counter with."""
        processes = min(cores(), len(items) // per_process) if _can_fork() else 1
        if processes < 2:
            self._chunks: list[Sequence[T]] = [items]
            self._taken: Any = None
            return
        import multiprocessing  # noqa: PLC0415 (only for repos that big: it costs start-up time)

        # The first item is done here before forking: what the work prepares on first use (a
        # compiled schema, modules imported late) is then prepared once, and shared.
        self._chunks = [items[:1]]
        self._done[0] = work(self._chunks[0])
        size = min(-(-(len(items) - 1) // (processes * CHUNKS_PER_PROCESS)), MOST_PER_CHUNK)
        self._chunks += [items[start : start + size] for start in range(1, len(items), size)]
        context = multiprocessing.get_context("fork")
        self._taken = context.Value("l", 1)
        for _ in range(processes - 1):
            receiving, sending = context.Pipe(duplex=False)
            helper = context.Process(target=self._help, args=(sending,), daemon=True)
            helper.start()
            sending.close()  # the helper's end: this process sees EOF once the helper is gone
            self._helpers.append(helper)
            self._pipes.append(receiving)

    def _take(self) -> int | None:
        """The index of the next chunk nobody has taken yet."""
        if self._taken is None:
            index, self._next = self._next, self._next + 1
        else:
            with self._taken.get_lock():
                index = self._taken.value
                self._taken.value = index + 1
        return index if index < len(self._chunks) else None

    def _help(self, sending: Connection) -> None:
        """A helper's life: chunks until none are left, each sent back as soon as it is done.

        A thread sends them: a chunk's results are more than a pipe holds, and this process
        takes them in only between chunks of its own (or after loading the state, for `plan`),
        so a helper that sent them itself would wait for it instead of going on."""
        import queue  # noqa: PLC0415 (a helper's: most runs fork none, and start up without)
        import signal  # noqa: PLC0415

        gc.disable()  # it builds nothing cyclic, and a collection would copy pages it shares
        # Ctrl-C reaches every process of the terminal's group: this process stops its helpers
        # (and says so once); a helper interrupted on its own would print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        sender = threading.Thread(target=_send, args=(outbox, sending), daemon=True)
        sender.start()
        try:
            while (index := self._take()) is not None:
                outbox.put(_dumps((index, self._work(self._chunks[index]))))
        except Exception:  # noqa: S110 (what it was doing is redone, and raised, by the parent)
            pass
        finally:
            outbox.put(None)
            sender.join()
            sending.close()

    def results(self) -> list[R]:
        """Every chunk's result, this process helping with the chunks left."""
        return list(self.each())

    def each(self) -> Iterator[R]:
        """Every chunk's result in the order of the chunks, each as soon as it and those before
        it are done (this process helping with the chunks left): whoever takes them in can let
        each go before the next, rather than hold them all."""
        given = 0

        def ready() -> Iterator[R]:
            nonlocal given
            while given in self._done:
                yield self._done.pop(given)
                given += 1

        try:
            while (index := self._take()) is not None:
                self._done[index] = self._work(self._chunks[index])
                self._chunks[index] = ()  # its items are let go once done (not its slot)
                # Everything the helpers sent meanwhile, before a chunk of its own: while this
                # process was busy (loading the state, for `plan`) they may have sent many, and
                # its own later results would wait, held whole, for those to be taken in.
                while self._receive(block=False):
                    yield from ready()
                yield from ready()
            while self._pipes:
                self._receive(block=True)
                yield from ready()
            while given < len(self._chunks):  # a chunk a helper took but never sent
                self._done[given] = self._work(self._chunks[given])
                yield from ready()
        finally:
            self.close()

    def _receive(self, *, block: bool) -> bool:
        """A result from each helper that has sent one (with `block`, at least one result or
        end): whether any had sent something."""
        if not self._pipes:
            return False
        import pickle  # noqa: PLC0415 (as multiprocessing: only where there are helpers)
        from multiprocessing.connection import wait as ready  # noqa: PLC0415

        found = ready(self._pipes, timeout=None if block else 0)
        for pipe in [pipe for pipe in self._pipes if pipe in found]:
            try:
                received: tuple[int, R] = pickle.loads(pipe.recv_bytes())  # noqa: S301 (from a helper forked from this process)
            except EOFError:
                self._pipes.remove(pipe)
                pipe.close()
            else:
                self._done[received[0]] = received[1]
                self._chunks[received[0]] = ()
        return bool(found)

    def close(self) -> None:
        """Stops the helpers: at once if an error ends the work early, else they are done."""
        for helper in self._helpers:
            helper.terminate()
        for helper in self._helpers:
            helper.join()
        for pipe in self._pipes:
            pipe.close()
        self._helpers, self._pipes = [], []
