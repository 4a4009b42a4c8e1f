"""Serialisation: the :class:`Codec`, the one object that pickles (as python-diskcache's
``Disk`` does for its cache).

It owns the pickle protocol and how large buffers leave the pickle stream (the bodies of
chunk files and index segments, whose framing :mod:`swarm_memo.cache.codec` and
:mod:`swarm_memo.cache.segments` own), the run's ``(exec_fn, params)`` sent to workers
(cloudpickle: functions of scripts and notebooks travel by value) and the outputs workers
send back (pickle, as chunk files store them: an output that cannot be stored fails in
the worker, as its point's failure). A memo's config holds one; lower layers receive it.
It sits in ``core`` so that worker code, which may import only ``core`` and ``identity``,
uses the same object as the cache. Pickles are read whatever protocol wrote them.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Iterable
from dataclasses import dataclass

from swarm_memo.core.jobs import PointFailure
from swarm_memo.core.types import ExecFn, Params

PICKLE_PROTOCOL = 5
"""The protocol chunk files, segments and worker results are written with."""
OUT_OF_BAND_BYTES = 64 * 1024
"""Pickle buffers at least this large leave the stream (chunk files: codec 2)."""
PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError)
"""What pickling an object that cannot be pickled raises."""

Outcome = tuple[list[object], list[int]]
"""Outputs of an exec chunk (a :class:`PointFailure` for failed points) and the indices
of the failed ones."""


@dataclass(frozen=True)
class Codec:
    """How swarm-memo turns objects into bytes and back.

    ``protocol`` is the pickle protocol of everything written (below 5 no buffer leaves
    the stream: chunk files are then all codec 1); ``out_of_band_bytes`` is the size from
    which a pickle buffer (a numpy array's data) is stored out of band. Any codec reads
    what any other wrote: the file format does not depend on it.
    """

    protocol: int = PICKLE_PROTOCOL
    out_of_band_bytes: int = OUT_OF_BAND_BYTES

    def dumps(self, obj: object) -> bytes:
        """Pickle ``obj`` (index segments, digests of values)."""
        return pickle.dumps(obj, protocol=self.protocol)

    def loads(
        self, data: bytes | memoryview, buffers: Iterable[memoryview] | None = None
    ) -> object:
        """Unpickle ``data``; ``buffers`` are those :meth:`dumps_split` kept out of band."""
        return pickle.loads(data, buffers=buffers)

    def dumps_split(self, obj: object) -> tuple[bytes, list[memoryview]]:
        """Pickle ``obj`` with its large buffers kept out of the stream: ``(stream,
        buffers)``, in the order :meth:`loads` wants them back."""
        if self.protocol < 5:
            return self.dumps(obj), []
        buffers: list[memoryview] = []

        def in_band(buffer: pickle.PickleBuffer) -> bool:
            view = buffer.raw()
            if view.nbytes < self.out_of_band_bytes:
                return True
            buffers.append(view)
            return False

        return pickle.dumps(obj, protocol=self.protocol, buffer_callback=in_band), buffers

    def storable_error(self, obj: object) -> Exception | None:
        """Why ``obj`` cannot be stored (pickled), or None if it can. Large buffers are
        not copied, only checked."""
        callback = _not_copied if self.protocol >= 5 else None
        try:
            pickle.Pickler(_Discard(), self.protocol, buffer_callback=callback).dump(obj)
        except Exception as exc:
            return exc
        return None

    # ------------------------------------------------------------- the run, to workers

    def dumps_run(self, exec_fn: ExecFn, params: Params) -> bytes:
        """The run's function and params for workers (cloudpickle: by value)."""
        import cloudpickle

        return bytes(cloudpickle.dumps((exec_fn, params), protocol=self.protocol))

    def loads_run(self, blob: bytes) -> tuple[ExecFn, Params]:
        """The worker's side of :meth:`dumps_run`."""
        import cloudpickle

        exec_fn, params = cloudpickle.loads(blob)
        return exec_fn, params

    # ---------------------------------------------------------- outputs, from workers

    def encode_outcome(self, outputs: list[object], failed: list[int], skip_errors: bool) -> bytes:
        """Pickle ``(outputs, failed)`` in a worker; an output that does not pickle becomes
        its point's failure (so it fails there, not in the executor's plumbing)."""
        try:
            return pickle.dumps((outputs, failed), protocol=self.protocol)
        except Exception:
            pass  # find the culprits: one pickle per output, only on this rare path
        outcome = self._fail_unpicklable(outputs, failed, skip_errors)
        return pickle.dumps(outcome, protocol=self.protocol)

    def decode_outcome(self, payload: bytes) -> Outcome:
        """The driver's side of :meth:`encode_outcome`."""
        outputs, failed = pickle.loads(payload)
        return outputs, failed

    def check_outcome(self, outputs: list[object], failed: list[int], skip_errors: bool) -> Outcome:
        """In-process backends: an output that cannot be stored becomes its point's
        failure, exactly as :meth:`encode_outcome` does in a worker. One pickling pass
        into nothing; per output only if it fails."""
        if self.storable_error(outputs) is None:
            return outputs, failed
        return self._fail_unpicklable(outputs, failed, skip_errors)

    def _fail_unpicklable(
        self, outputs: list[object], failed: list[int], skip_errors: bool
    ) -> Outcome:
        """Each output that does not pickle replaced by its failure; unless
        ``skip_errors``, the outputs end at the first failure (evaluation stops there)."""
        outputs = list(outputs)
        failed = list(failed)
        for index, output in enumerate(outputs):
            if isinstance(output, PointFailure):
                continue
            try:
                pickle.dumps(output, protocol=self.protocol)
            except Exception as exc:
                outputs[index] = unpicklable_output_failure(index, exc)
                failed = sorted([*failed, index])
                if not skip_errors:
                    del outputs[index + 1 :]
                    failed = [i for i in failed if i <= index]
                    break
        return outputs, failed


DEFAULT_CODEC = Codec()
"""The codec of every memo (a private seam: ``MemoConfig.codec``)."""


def unpicklable_output_failure(index: int, exc: BaseException) -> PointFailure:
    """The failure of point ``index`` whose output could not be pickled (raised ``exc``),
    the same in workers and in the driver."""
    return PointFailure(
        index,
        type(exc).__qualname__,
        f"exec_fn returned an output that cannot be pickled: {exc}",
        "".join(traceback.format_exception(exc)),
        stage="pickle",
    )


class _Discard:
    """A file that drops what is written: pickling into it only checks picklability."""

    def write(self, data: bytes) -> int:
        return len(data)


def _not_copied(buffer: pickle.PickleBuffer) -> bool:
    return False  # large buffers (numpy arrays) are not copied, only checked
