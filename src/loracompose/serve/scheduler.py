"""One thread that batches queued jobs and decodes them, streaming text back.

    submit(job)  → queued, or QueueFull (the caller answers 429 with Retry-After)
    thread loop  → take the oldest job, wait `batch_window_s` for more, fill the batch up to
                   `max_batch_rows` forward rows in arrival order (whatever the compositions:
                   rows carry per-sequence weights; logit-sum jobs share the batch too, one row
                   per member), then prefill and step until every sequence is done

Static batching: a batch runs to its end before the next starts (a job that
arrives meanwhile waits in the queue). Each step, a job past its deadline or
whose client went away is cancelled — its rows run on as padding and it is
answered at once; so is a job whose scores became NaN/Inf (422), alone.
Results do not depend on the batch: every sequence samples from its own
generator, and padded positions are masked out.

Events go to each job's `emit` (called from this thread; the app forwards them
to its event loop): ("delta", [(choice, text)]), ("done", None), ("error", (status, message)).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from loracompose.decoding import Decoder, continuation_text
from loracompose.serve.engine import Engine, Plan

log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    plan: Plan
    emit: Callable[[str, object], None]
    deadline: float  # time.monotonic() by which it must be answered
    stream: bool = False
    cancelled: bool = False  # set by the app when the client goes away
    arrived: float = field(default_factory=time.monotonic)
    texts: list[str] = field(default_factory=list)  # final text per choice
    sent: list[str] = field(default_factory=list)  # streamed so far per choice
    answered: bool = False


class Scheduler:
    def __init__(self, engine: Engine):
        self.engine, self.settings = engine, engine.settings
        self.queue: deque[Job] = deque()
        self.ready = threading.Condition()
        self.stopping = False
        self.batch_seconds = 1.0  # moving average of a batch's duration: the Retry-After estimate
        self.stats = {"batches": 0, "sequences": 0, "max_batch_jobs": 0, "max_batch_rows": 0, "max_queue_seen": 0,
                      "rejected": 0, "timed_out": 0, "client_gone": 0, "mixed_batches": 0, "non_finite": 0}
        self.thread = threading.Thread(target=self._run, name="loracompose-scheduler", daemon=True)
        self.thread.start()

    # -- the app's side ----------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self.ready:
            if len(self.queue) >= self.settings.max_queue:
                self.stats["rejected"] += 1
                raise QueueFull(max(1, math.ceil(self.batch_seconds)))
            self.queue.append(job)
            self.stats["max_queue_seen"] = max(self.stats["max_queue_seen"], len(self.queue))
            self.ready.notify()

    def stop(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify()
        self.thread.join(timeout=30)

    def snapshot(self) -> dict:
        with self.ready:
            return {"queued": len(self.queue), **self.stats}

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            started = time.monotonic()
            try:
                self._decode(batch)
            except Exception:  # a bug, not a client's doing: answer this batch, keep serving
                log.exception("batch failed")
                for job in batch:
                    self._answer(job, "error", (500, "internal error while generating; see the server log"))
            self.batch_seconds = 0.8 * self.batch_seconds + 0.2 * (time.monotonic() - started)

    def _expired(self, job: Job, now: float) -> bool:
        if job.cancelled:
            self.stats["client_gone"] += 1
            self._answer(job, "error", (499, "the client closed the request"))
            return True
        if now > job.deadline:
            self.stats["timed_out"] += 1
            self._answer(job, "error", (408, f"request cancelled: not finished within its deadline of "
                                             f"{self.settings.request_timeout_s:g} s; retry later or ask for "
                                             "fewer tokens"))
            return True
        return False

    def _gather(self) -> list[Job] | None:
        """The next batch: the oldest job plus whatever fits and arrives within the window (FIFO)."""
        with self.ready:
            while True:
                while not self.queue and not self.stopping:
                    self.ready.wait()
                if self.stopping:
                    for job in self.queue:
                        self._answer(job, "error", (503, "the server is shutting down"))
                    self.queue.clear()
                    return None
                job = self.queue.popleft()
                if not self._expired(job, time.monotonic()):
                    break
            batch, rows = [job], job.plan.rows
            until = time.monotonic() + self.settings.batch_window_s
            while rows < self.settings.max_batch_rows:
                if self.queue:
                    head = self.queue[0]
                    if self._expired(head, time.monotonic()):
                        self.queue.popleft()
                        continue
                    if rows + head.plan.rows > self.settings.max_batch_rows:
                        break  # keep arrival order: the head waits for the next batch
                    batch.append(self.queue.popleft())
                    rows += head.plan.rows
                    continue
                left = until - time.monotonic()
                if left <= 0 or self.stopping:
                    break
                self.ready.wait(left)
        return batch

    def _decode(self, batch: list[Job]) -> None:
        engine = self.engine
        sequences, owner = [], []  # owner[i] = (job, choice) of sequence i
        for job in batch:
            job.texts = [""] * len(job.plan.sequences)
            job.sent = [""] * len(job.plan.sequences)
            for choice, sequence in enumerate(job.plan.sequences):
                sequences.append(sequence)
                owner.append((job, choice))
        self.stats["batches"] += 1
        self.stats["sequences"] += len(sequences)
        self.stats["max_batch_jobs"] = max(self.stats["max_batch_jobs"], len(batch))
        self.stats["max_batch_rows"] = max(self.stats["max_batch_rows"], sum(j.plan.rows for j in batch))
        if len({str(j.plan.sequences[0].rows) + str(j.plan.sequences[0].coefficients) for j in batch}) > 1:
            self.stats["mixed_batches"] += 1
        decoder = Decoder(engine.composed, engine.tokenizer, sequences, last_logits_only=True)
        with engine.composed.composition(decoder.row_weights):  # held for the batch (coefficients cached)
            self._steps(batch, owner, decoder)
        for job in batch:
            if not job.answered:  # every sequence finished at once with the last step
                self._answer(job, "done", None)

    def _steps(self, batch: list[Job], owner: list, decoder: Decoder) -> None:
        while not decoder.done:
            changed = decoder.step()
            now = time.monotonic()
            deltas: dict[int, list] = {}
            for index in changed:
                job, choice = owner[index]
                if job.answered:
                    continue
                delta = self._advance(job, choice, decoder, index)
                if delta:
                    deltas.setdefault(id(job), [job, []])[1].append((choice, delta))
            for job, items in deltas.values():
                job.emit("delta", items)
            for job in batch:
                if job.answered:
                    continue
                failed = next((i for i, s in enumerate(job.plan.sequences) if s.finish_reason == "error"), None)
                if failed is not None:  # its scores overflowed: this job alone fails, the batch goes on
                    self.stats["non_finite"] += 1
                    self._answer(job, "error", (422, f"generation failed for choice {failed}: the model's scores "
                                                     "became NaN or Inf (a module's weights overflow under this "
                                                     "composition); try smaller weights or other modules"))
                    self._cancel(job, owner, decoder)
                elif all(s.finish_reason for s in job.plan.sequences):
                    self._answer(job, "done", None)
                elif self._expired(job, now):
                    self._cancel(job, owner, decoder)

    @staticmethod
    def _cancel(job: Job, owner: list, decoder: Decoder) -> None:
        for index, (owner_job, _) in enumerate(owner):
            if owner_job is job:
                decoder.cancel(index)

    def _advance(self, job: Job, choice: int, decoder: Decoder, index: int) -> str:
        """Update a choice's text after a step (stop strings end it); the new text safe to stream."""
        sequence = job.plan.sequences[choice]
        if not (job.stream or job.plan.stops or sequence.finish_reason):
            return ""  # non-streaming without stop strings: decode once, at the end
        with self.engine.tokenizer_lock:
            text = continuation_text(self.engine.tokenizer, sequence)
        hold = 0
        if job.plan.stops:
            cut = _cut(text, job.plan.stops)
            if cut != text:  # a stop string appeared: the text ends before it
                text = cut
                if not sequence.finish_reason:
                    decoder.cancel(index)
                sequence.finish_reason = "stop"
            elif not sequence.finish_reason:
                hold = max(len(s) for s in job.plan.stops) - 1  # may be the start of a stop string
        job.texts[choice] = text
        if not job.stream:
            return ""
        if not sequence.finish_reason:
            # An incomplete UTF-8 character decodes to U+FFFD until its last byte arrives.
            safe = len(text.rstrip("\ufffd")) - hold
            text = text[: max(safe, len(job.sent[choice]))]
        if not text.startswith(job.sent[choice]):
            return ""  # decoding changed earlier text (rare); what was sent stands
        delta = text[len(job.sent[choice]):]
        job.sent[choice] = text
        return delta

    def _answer(self, job: Job, kind: str, payload) -> None:
        if job.answered:
            return
        job.answered = True
        if kind == "done":
            with self.engine.tokenizer_lock:
                job.texts = [_cut(continuation_text(self.engine.tokenizer, s), job.plan.stops)
                             for s in job.plan.sequences]
        job.emit(kind, payload)


def _cut(text: str, stops: list[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
