"""One thread that decodes every running request, step by step, and lets new ones join (continuous batching).

    submit(job)  → queued, or QueueFull (the caller answers 429 with Retry-After)
    thread loop  → each iteration: take queued jobs (FIFO) while their rows fit in `max_batch_rows`
                   beside the running ones, prefill them together and draw their first token, merge
                   them into the running batch; then one decode step for every running sequence;
                   finished, cancelled and failed sequences leave the batch at once

Iteration-level batching: a request never waits for a batch to end, only for
rows to be free (the head of the queue waits when the batch is full; the queue
then fills up to `max_queue`, beyond which the answer is 429). When the server
is idle, the first job waits `batch_window_s` for others to share its prefill.
Compositions stay per sequence: every row carries its own weights in the fused
layers, a logit-sum sequence takes one row per member. A job past its deadline
or whose client went away is cancelled — its rows leave at the next step, and
it is answered at once; so is a job whose scores became NaN/Inf (422), alone.
Results do not depend on the batch: every sequence samples from its own
generator, and padded positions are masked out (tests/test_serve_continuous.py).

Why by hand and not transformers' own continuous batching (`generate_batch`,
`ContinuousBatchingManager`, transformers 5.x): it packs every request's tokens
into one row of a paged cache and draws all next tokens with one
`torch.multinomial` over the batch. Per-sequence composition weights need one
batch row per sequence (the fused layers scale each row's rank activations by
its own coefficients), logit-sum needs several member rows combined into one
distribution before sampling, and batch-independent results need one generator
per sequence; none of the three fits its model runner. So the batch stays a
left-padded `DynamicCache` (transformers' own), and `decoding.Decoder` grows
and shrinks it (`absorb`, `compact`).

Events go to each job's `emit` (called from this thread; the app forwards them
to its event loop): ("delta", [(choice, text)]), ("done", None), ("error", (status, message)).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from loracompose.decoding import Decoder, continuation_text, move_columns
from loracompose.serve.engine import Engine, Plan
from loracompose.serve.metrics import Metrics
from loracompose.serve import modules as hot_modules

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
    first_token: bool = False  # its prefill has drawn its first token (time-to-first-token recorded)

    def uses(self) -> set[str]:
        """The modules its sequences weight (by name, from the plan's columns)."""
        used = set()
        for sequence in self.plan.sequences:
            if sequence.rows is not None:
                used.update(self.plan.columns[j] for j in sequence.rows.abs().sum(0).nonzero().flatten().tolist())
        return used


class Scheduler:
    def __init__(self, engine: Engine):
        self.engine, self.settings = engine, engine.settings
        self.queue: deque[Job] = deque()
        self.ready = threading.Condition()
        self.stopping = False
        self.cohorts: list[Decoder] = []  # the running batch: one decoder, more only where caches cannot merge
        self.owner: dict[int, tuple[Job, int]] = {}  # id(sequence) → (job, choice), for running sequences
        self.running: list[Job] = []
        self.job_seconds = 1.0  # moving average of a job's time from arrival to answer: the Retry-After estimate
        self.batch_rows = 0  # rows of the running batch after the last step (read by the metrics)
        self.admin: deque[tuple[Callable, Future]] = deque()  # run in this thread between steps (`call`)
        self.metrics = Metrics(queue_depth=lambda: len(self.queue), batch_rows=lambda: self.batch_rows,
                               running=lambda: len(self.running), modules=lambda: len(engine.bank))
        self.stats = {"batches": 0, "sequences": 0, "steps": 0, "max_batch_jobs": 0, "max_batch_rows": 0,
                      "max_queue_seen": 0, "rejected": 0, "timed_out": 0, "client_gone": 0, "mixed_batches": 0,
                      "non_finite": 0, "joined_running": 0}
        self.thread = threading.Thread(target=self._run, name="loracompose-scheduler", daemon=True)
        self.thread.start()

    # -- the app's side ----------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self.ready:
            if len(self.queue) >= self.settings.max_queue:
                self.stats["rejected"] += 1
                self.metrics.rejected.inc()
                raise QueueFull(max(1, math.ceil(self.job_seconds)))
            self.queue.append(job)
            self.stats["max_queue_seen"] = max(self.stats["max_queue_seen"], len(self.queue))
            self.ready.notify()

    def call(self, fn: Callable, timeout: float = 120.0):
        """Run `fn()` in the scheduler thread between two steps (where the fused layers may change); its result."""
        future: Future = Future()
        with self.ready:
            if self.stopping:
                raise RuntimeError("the scheduler is stopping")
            self.admin.append((fn, future))
            self.ready.notify()
        return future.result(timeout)

    def rebank(self, modules: list) -> None:
        """Fuse `modules` as the bank (this thread only); running rows move to the new columns by name."""
        old = hot_modules.rebank(self.engine, modules)
        new = self.engine.bank.names
        for decoder in self.cohorts:
            decoder.composed = self.engine.composed
            decoder.remap_columns(old, new)

    def prune(self) -> None:
        """Drop from the fused layers the removed modules no accepted request (running or queued) uses."""
        if not self.engine.draining:
            return
        with self.ready:
            waiting = list(self.queue)
        used = set().union(*(job.uses() for job in self.running + waiting))
        unused = self.engine.draining - used
        if unused:
            self.rebank([m for m in self.engine.bank.modules if m.name not in unused])

    def stop(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify()
        self.thread.join(timeout=30)

    def snapshot(self) -> dict:
        with self.ready:
            return {"queued": len(self.queue), "running_jobs": len(self.running), "running_rows": self.rows(),
                    **self.stats}

    def rows(self) -> int:
        """Forward rows the running batch takes now."""
        return sum(int(d.counts.sum()) for d in self.cohorts)

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            joining = self._admit()
            if joining is None:
                return
            self._administer()
            try:
                if joining:
                    self._join(joining)
                if self.cohorts:
                    self._step()
            except Exception:  # a bug, not a client's doing: answer the running jobs, keep serving
                log.exception("decoding failed")
                for job in self.running + joining:
                    self._answer(job, "error", (500, "internal error while generating; see the server log"))
                self.cohorts, self.owner, self.running = [], {}, []
            self.batch_rows = self.rows()
            if self.engine.draining:  # a removed module leaves the fused layers after its last request
                try:
                    self.prune()
                except Exception:
                    log.exception("removing a module failed")

    def _administer(self) -> None:
        """Run the calls queued by `call` (module changes)."""
        while True:
            with self.ready:
                if not self.admin:
                    break
                fn, future = self.admin.popleft()
            try:
                future.set_result(fn())
            except Exception as exc:  # the caller gets it (an ApiError becomes its 4xx)
                future.set_exception(exc)

    def _expired(self, job: Job, now: float) -> bool:
        if job.cancelled:
            self.stats["client_gone"] += 1
            self._answer(job, "error", (499, "the client closed the request"))
            return True
        if now > job.deadline:
            self.stats["timed_out"] += 1
            self.metrics.timed_out.inc()
            self._answer(job, "error", (408, f"request cancelled: not finished within its deadline of "
                                             f"{self.settings.request_timeout_s:g} s; retry later or ask for "
                                             "fewer tokens"))
            return True
        return False

    def _admit(self) -> list[Job] | None:
        """Queued jobs that join at this step (FIFO, while their rows fit); None when stopping.

        Blocks only while nothing runs; an idle server waits `batch_window_s` after the first
        job for others to share its prefill.
        """
        with self.ready:
            while not self.stopping and not self.queue and not self.cohorts and not self.admin:
                self.ready.wait()
            if self.stopping:
                for _, future in self.admin:
                    future.set_exception(RuntimeError("the server is shutting down"))
                self.admin.clear()
                for job in list(self.queue) + self.running:
                    self._answer(job, "error", (503, "the server is shutting down"))
                self.queue.clear()
                return None
            idle = not self.cohorts
            rows, joining = self.rows(), []
            until = time.monotonic() + self.settings.batch_window_s
            while True:
                while self.queue and self._expired(self.queue[0], time.monotonic()):
                    self.queue.popleft()
                if self.queue and rows + self.queue[0].plan.rows <= self.settings.max_batch_rows:
                    job = self.queue.popleft()  # the head waits while the batch is full: arrival order holds
                    joining.append(job)
                    rows += job.plan.rows
                    continue
                left = until - time.monotonic()
                if not idle or not joining or left <= 0 or self.stopping or rows >= self.settings.max_batch_rows:
                    break
                self.ready.wait(left)
        return joining

    def _join(self, jobs: list[Job]) -> None:
        """Prefill `jobs` together, draw their first tokens, and merge them into the running batch."""
        jobs = [job for job in jobs if self._on_current_bank(job)]
        if not jobs:
            return
        sequences = []
        for job in jobs:
            job.texts = [""] * len(job.plan.sequences)
            job.sent = [""] * len(job.plan.sequences)
            for choice, sequence in enumerate(job.plan.sequences):
                sequences.append(sequence)
                self.owner[id(sequence)] = (job, choice)
        self.stats["batches"] += 1
        self.stats["sequences"] += len(sequences)
        if self.running:
            self.stats["joined_running"] += 1
        self.running += jobs
        decoder = Decoder(self.engine.composed, self.engine.tokenizer, sequences, last_logits_only=True)
        self._after_step(decoder, decoder.step())
        now = time.monotonic()
        for job in jobs:
            job.first_token = True
            self.metrics.first_token.observe(now - job.arrived)
        if decoder.sequences:
            target = next((d for d in self.cohorts if d.can_absorb(decoder)), None)
            if target is not None:
                target.absorb(decoder)
            else:  # e.g. a full sliding-window cache (Gemma): decoded beside the batch, as its own forward
                self.cohorts.append(decoder)
        self.stats["max_batch_jobs"] = max(self.stats["max_batch_jobs"], len(self.running))
        if len({_composition_key(j) for j in self.running}) > 1:
            self.stats["mixed_batches"] += 1

    def _on_current_bank(self, job: Job) -> bool:
        """Move a job planned against an earlier bank to the current columns; False (answered 404) when a
        module it weights has left the bank since."""
        columns = tuple(self.engine.bank.names)
        if job.plan.columns == columns:
            return True
        gone = sorted(job.uses() - set(columns))
        if gone:
            self._answer(job, "error", (404, f"module '{gone[0]}' was removed before this request started"))
            return False
        for sequence in job.plan.sequences:
            if sequence.rows is not None:
                sequence.rows = move_columns(sequence.rows, job.plan.columns, columns)
        job.plan.columns = columns
        return True

    def _step(self) -> None:
        """One decode step for every running sequence."""
        self.stats["steps"] += 1
        self.stats["max_batch_rows"] = max(self.stats["max_batch_rows"], self.rows())
        for decoder in list(self.cohorts):
            self._after_step(decoder, decoder.step())
            if not decoder.sequences:
                self.cohorts.remove(decoder)

    def _after_step(self, decoder: Decoder, changed: list[int]) -> None:
        """Stream the new text, answer what finished or failed, and let finished rows leave the batch."""
        now = time.monotonic()
        self.metrics.tokens.inc(sum(1 for i in changed if _took_token(decoder.sequences[i])))
        deltas: dict[int, list] = {}
        for index in changed:
            job, choice = self.owner[id(decoder.sequences[index])]
            if job.answered:
                continue
            delta = self._advance(job, choice, decoder, index)
            if delta:
                deltas.setdefault(id(job), [job, []])[1].append((choice, delta))
        for job, items in deltas.values():
            job.emit("delta", items)
        jobs = {id(self.owner[id(s)][0]): self.owner[id(s)][0] for s in decoder.sequences}
        for job in jobs.values():
            if job.answered:
                self._cancel(job, decoder)
                continue
            failed = next((i for i, s in enumerate(job.plan.sequences) if s.finish_reason == "error"), None)
            if failed is not None:  # its scores overflowed: this job alone fails, the batch goes on
                self.stats["non_finite"] += 1
                self._answer(job, "error", (422, f"generation failed for choice {failed}: the model's scores "
                                                 "became NaN or Inf (a module's weights overflow under this "
                                                 "composition); try smaller weights or other modules"))
                self._cancel(job, decoder)
            elif all(s.finish_reason for s in job.plan.sequences):
                self._answer(job, "done", None)
            elif self._expired(job, now):
                self._cancel(job, decoder)
        for sequence in decoder.compact():
            self.owner.pop(id(sequence), None)
        self.running = [j for j in self.running if not j.answered]

    def _cancel(self, job: Job, decoder: Decoder) -> None:
        """End every sequence of `job` (it was answered) in `decoder`, which holds all of a job's sequences
        (a job joins in one prefill and is merged whole); its rows leave at the next compaction."""
        for index, sequence in enumerate(decoder.sequences):
            if self.owner.get(id(sequence), (None,))[0] is job:
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
        seconds = time.monotonic() - job.arrived
        self.job_seconds = 0.8 * self.job_seconds + 0.2 * seconds
        if kind == "done":
            self.metrics.latency.observe(seconds)
            with self.engine.tokenizer_lock:
                job.texts = [_cut(continuation_text(self.engine.tokenizer, s), job.plan.stops)
                             for s in job.plan.sequences]
        job.emit(kind, payload)


def _took_token(sequence) -> bool:
    """Whether a sequence reported changed by a step drew a token there (not EOS, a failure or a cancel)."""
    return sequence.finish_reason in (None, "length")  # "stop" here is EOS, which is not kept as a token


def _composition_key(job: Job) -> str:
    first = job.plan.sequences[0]
    return f"{first.rows}{first.coefficients}"


def _cut(text: str, stops: list[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
