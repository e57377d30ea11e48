"""Continuous batching: one model, one worker thread, many sessions decoded together.

:class:`GenerationEngine` owns the model on one worker thread and runs **continuous batching**:
a step loop over a batch that shares one KV cache, where new requests are prefilled and merged
into the batch between decode steps, and finished or cancelled ones are dropped from it (their
KV rows freed) at once. Every session gets one token per step, so a long answer never holds up
a short one; waiting requests are admitted first-come first-served.

The event loop never blocks: generation runs on the worker thread and pieces come back with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from llm.base import AnswerError
from llm.chat_format import render_prompt
from llm.transformers.request import Finished, Request, RequestStats
from llm.transformers.tensors import ForwardStyle, left_pad, new_cache, sample

if TYPE_CHECKING:
    import torch

    from llm.transformers.loading import LoadedModel

log = logging.getLogger(__name__)


class GenerationEngine:
    """One model, one worker thread, up to ``max_batch`` sequences decoded together.

    Layout: the batch shares one time axis, left-padded. ``mask`` [B, T] marks real KV slots,
    ``positions`` [B] is each row's next RoPE position, ``next_tokens`` [B] the last sampled
    token of each row (fed in the next step). Admission prefills the newcomers as their own
    left-padded batch, then concatenates their cache with the running one (padding the shorter
    on the left): the running sequences lose one step's time, not their place.

    Failures stay with their request: a prefill that raises is retried one request at a time,
    so only the request that fails gets the error; a decode step that raises (e.g. CUDA out of
    memory as the cache grows) is rolled back and the newest sequence is ended with an error
    (as vLLM preempts the newest), then the step is retried for the rest.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch: int = 8,
        max_new_tokens: int = 256,
        temperature: float = 0.6,
        top_p: float = 0.9,
        first_token_timeout_s: float | None = None,
        max_prefill_tokens: int = 16384,
        stats_kept: int = 1024,
    ) -> None:
        import torch

        self._torch = torch
        self._loaded = loaded
        self._model = loaded.model
        self._tokenizer = loaded.tokenizer
        self._device = torch.device(loaded.device)
        self._style = ForwardStyle(self._model)
        self.max_batch = max_batch
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.first_token_timeout_s = first_token_timeout_s
        self.max_prefill_tokens = max_prefill_tokens
        self.max_context = loaded.max_context
        self.eos_ids = self._eos_ids()
        self.pad_id = self._tokenizer.pad_token_id or 0
        self.finished: collections.deque[RequestStats] = collections.deque(maxlen=stats_kept)
        self.steps = 0
        self._tokenizer_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._waiting: collections.deque[Request] = collections.deque()
        self._closed = False
        # Batch state: touched by the worker thread only.
        self._rows: list[Request] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None
        self._next: torch.Tensor | None = None
        self._admit_order: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name="sos-llm-worker", daemon=True)
        self._thread.start()

    # ---- public, thread-safe ---------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added). Safe from any thread."""
        with self._tokenizer_lock:
            return list(self._tokenizer.encode(text, add_special_tokens=False))

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        with self._tokenizer_lock:
            return render_prompt(self._tokenizer, messages)

    @property
    def active(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def generate(
        self,
        prompt_ids: Sequence[int],
        *,
        max_new_tokens: int | None = None,
        ignore_eos: bool = False,
    ) -> AsyncIterator[str]:
        """Stream the text of one completion of ``prompt_ids``, piece by piece.

        Closing this generator (``aclose()``, or cancelling the task that iterates it) cancels
        the request: the worker drops it before its next step. Errors of this request only
        arrive here as :class:`AnswerError`.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def deliver(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        req = Request(
            id=next(self._ids),
            prompt_ids=list(prompt_ids),
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            ignore_eos=ignore_eos,
            deliver=deliver,
        )
        self._submit(req)
        done = False
        try:
            first = True
            while True:
                if first and self.first_token_timeout_s:
                    try:
                        item = await asyncio.wait_for(queue.get(), self.first_token_timeout_s)
                    except TimeoutError:
                        raise AnswerError(
                            f"the model did not start answering within "
                            f"{self.first_token_timeout_s:g} s (busy: {self.active} answering, "
                            f"{self.waiting} waiting)"
                        ) from None
                else:
                    item = await queue.get()
                first = False
                if isinstance(item, str):
                    yield item
                elif isinstance(item, Finished):
                    done = True
                    return
                elif isinstance(item, BaseException):
                    done = True
                    raise item
        finally:
            if not done:
                self.cancel(req)

    def cancel(self, req: Request) -> None:
        """Mark ``req`` cancelled; the worker frees it before its next step."""
        with self._cond:
            req.cancelled = True
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still running end with an AnswerError."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # ---- worker thread ---------------------------------------------------------------------

    def _submit(self, req: Request) -> None:
        limit = self.max_context - 1
        if not req.prompt_ids:
            raise AnswerError("empty prompt")
        if len(req.prompt_ids) > limit:
            raise AnswerError(
                f"the prompt is {len(req.prompt_ids)} tokens, more than the model's "
                f"context of {self.max_context}"
            )
        with self._cond:
            if self._closed:
                raise AnswerError("the local model has been shut down")
            self._waiting.append(req)
            self._cond.notify()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        tok = self._tokenizer
        for value in (tok.eos_token_id, getattr(self._model.config, "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        for token in ("<|im_end|>", "<|endoftext|>"):
            tid = tok.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid >= 0 and tid != tok.unk_token_id:
                ids.add(tid)
        return ids

    def _run(self) -> None:
        torch = self._torch
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._closed and not self._waiting and not self._rows:
                        self._cond.wait()
                    if self._closed:
                        break
                    arrivals = self._take_arrivals()
                try:
                    self._drop_cancelled()
                    if arrivals:
                        self._admit(arrivals)
                    if self._rows:
                        self._decode_step()
                except Exception as exc:  # a fault of the engine itself: end all, keep serving
                    log.exception("LLM worker step failed; ending %d requests", len(self._rows))
                    rows = list(self._rows)
                    self._reset_batch()
                    for req in rows:
                        self._finish(req, "error", exc)
        with self._cond:
            leftover = [*self._rows, *self._waiting]
            self._waiting.clear()
        self._reset_batch()
        for req in leftover:
            self._finish(req, "closed", AnswerError("the local model has been shut down"))

    def _take_arrivals(self) -> list[Request]:
        """Waiting requests that fit now, first come first served (called with the lock)."""
        room = self.max_batch - len(self._rows)
        taken: list[Request] = []
        tokens = 0
        while self._waiting and len(taken) < room:
            req = self._waiting[0]
            if req.cancelled:
                self._waiting.popleft()
                self._finish(req, "cancelled")
                continue
            if taken and tokens + len(req.prompt_ids) > self.max_prefill_tokens:
                break  # the rest waits for the next step: decoding sessions keep flowing
            taken.append(self._waiting.popleft())
            tokens += len(req.prompt_ids)
        return taken

    def _drop_cancelled(self) -> None:
        gone = [r for r in self._rows if r.cancelled]
        if gone:
            self._remove(gone)
            for req in gone:
                self._finish(req, "cancelled")

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": positions,
            self._style.cache_kwarg: cache,
            "use_cache": True,
        }
        if self._style.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        return self._model(**kwargs).logits[:, -1, :]

    def _admit(self, reqs: list[Request]) -> None:
        torch = self._torch
        now = time.perf_counter()
        for req in reqs:
            req.admitted = now
        try:
            logits, cache, mask = self._prefill(reqs)
        except Exception as exc:
            self._after_failure(exc)
            if len(reqs) > 1:  # find the request that fails; the others go on
                for req in reqs:
                    self._admit([req])
            else:
                log.warning("LLM request %d failed in prefill: %s", reqs[0].id, exc)
                self._finish(reqs[0], "error", exc)
            return
        tokens = sample(logits, self.temperature, self.top_p)
        token_list = tokens.tolist()
        keep: list[int] = []
        for i, req in enumerate(reqs):
            if not self._on_token(req, token_list[i], len(req.prompt_ids)):
                keep.append(i)
        if not keep:
            return
        index = torch.tensor(keep, device=self._device)
        if len(keep) < len(reqs):
            cache.batch_select_indices(index)
            mask = mask[index]
        lengths = torch.tensor([len(reqs[i].prompt_ids) for i in keep], device=self._device)
        self._merge([reqs[i] for i in keep], cache, mask, lengths, tokens[index].to(self._device))

    def _prefill(self, reqs: list[Request]) -> tuple[Any, Any, Any]:
        torch = self._torch
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, req in enumerate(reqs):
            n = len(req.prompt_ids)
            ids[i, width - n :] = torch.tensor(req.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        ids, mask = ids.to(self._device), mask.to(self._device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache(self._model)
        logits = self._forward(ids, mask, positions, cache)
        if len(reqs) > 1:  # pad slots hold junk (even NaN): zero them so merging is safe
            keep = mask.bool()[:, None, :, None]
            for layer in cache.layers:
                layer.keys = torch.where(keep, layer.keys, 0)
                layer.values = torch.where(keep, layer.values, 0)
        return logits, cache, mask

    def _merge(self, reqs: list[Request], cache: Any, mask: Any, lengths: Any, tokens: Any) -> None:
        torch = self._torch
        for req in reqs:
            self._admit_order[req.id] = next(self._ids)
        if not self._rows:
            self._rows, self._cache, self._mask = list(reqs), cache, mask
            self._positions, self._next = lengths, tokens
            return
        assert self._mask is not None and self._positions is not None and self._next is not None
        old_t, new_t = self._mask.shape[1], mask.shape[1]
        width = max(old_t, new_t)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat(
                [left_pad(mine.keys, width - old_t), left_pad(theirs.keys, width - new_t)]
            )
            mine.values = torch.cat(
                [left_pad(mine.values, width - old_t), left_pad(theirs.values, width - new_t)]
            )
        pad_old = self._mask.new_zeros((self._mask.shape[0], width - old_t))
        pad_new = mask.new_zeros((mask.shape[0], width - new_t))
        self._mask = torch.cat([torch.cat([pad_old, self._mask], 1), torch.cat([pad_new, mask], 1)])
        self._positions = torch.cat([self._positions, lengths])
        self._next = torch.cat([self._next, tokens])
        self._rows.extend(reqs)

    def _decode_step(self) -> None:
        torch = self._torch
        assert self._mask is not None and self._positions is not None and self._next is not None
        width = self._mask.shape[1]
        mask = torch.cat([self._mask, self._mask.new_ones((self._mask.shape[0], 1))], 1)
        try:
            logits = self._forward(self._next[:, None], mask, self._positions[:, None], self._cache)
        except Exception as exc:
            self._after_failure(exc)
            for layer in self._cache.layers:  # undo the layers that already appended
                if layer.keys is not None and layer.keys.shape[2] > width:
                    layer.keys = layer.keys[:, :, :width]
                    layer.values = layer.values[:, :, :width]
            victim = max(self._rows, key=lambda r: self._admit_order.get(r.id, 0))
            log.warning("LLM decode step failed (%s); ending request %d", exc, victim.id)
            self._remove([victim])
            self._finish(victim, "error", exc)
            return
        self.steps += 1
        self._mask = mask
        self._positions = self._positions + 1
        tokens = sample(logits, self.temperature, self.top_p)
        self._next = tokens
        done: list[Request] = []
        positions = self._positions.tolist()
        for req, token, pos in zip(self._rows, tokens.tolist(), positions, strict=True):
            if self._on_token(req, token, pos):
                done.append(req)
        if done:
            self._remove(done)

    def _on_token(self, req: Request, token: int, position: int) -> bool:
        """Record and deliver one sampled token; True when the request is finished."""
        if req.first_token is None:
            req.first_token = time.perf_counter()
        if req.cancelled:
            self._finish(req, "cancelled")
            return True
        if token in self.eos_ids and not req.ignore_eos:
            self._finish(req, "stop")
            return True
        req.generated.append(token)
        try:
            piece = self._detokenize(req)
        except Exception as exc:
            self._finish(req, "error", exc)
            return True
        if piece:
            self._deliver(req, piece)
        if len(req.generated) >= req.max_new_tokens or position + 1 >= self.max_context:
            self._finish(req, "length")
            return True
        return False

    def _detokenize(self, req: Request) -> str:
        """New text since the last piece; held back while it ends in a partial UTF-8 char."""
        ids = req.generated
        with self._tokenizer_lock:
            before = self._tokenizer.decode(
                ids[req.prefix_offset : req.read_offset], skip_special_tokens=True
            )
            after = self._tokenizer.decode(ids[req.prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            req.prefix_offset, req.read_offset = req.read_offset, len(ids)
            return after[len(before) :]
        return ""

    def _remove(self, reqs: list[Request]) -> None:
        """Drop rows from the batch, freeing their KV slots, and trim shared left padding."""
        torch = self._torch
        gone = {r.id for r in reqs}
        keep = [i for i, r in enumerate(self._rows) if r.id not in gone]
        for r in reqs:
            self._admit_order.pop(r.id, None)
        if not keep:
            self._reset_batch()
            return
        if len(keep) == len(self._rows):
            return
        assert self._mask is not None and self._positions is not None and self._next is not None
        index = torch.tensor(keep, device=self._device)
        self._cache.batch_select_indices(index)
        self._rows = [self._rows[i] for i in keep]
        self._mask = self._mask[index]
        self._positions = self._positions[index]
        self._next = self._next[index]
        lead = int((self._mask.sum(0) == 0).int().cumprod(0).sum())
        if lead:
            self._mask = self._mask[:, lead:]
            for layer in self._cache.layers:
                layer.keys = layer.keys[:, :, lead:]
                layer.values = layer.values[:, :, lead:]

    def _reset_batch(self) -> None:
        self._rows, self._cache = [], None
        self._mask = self._positions = self._next = None
        self._admit_order.clear()

    def _after_failure(self, exc: BaseException) -> None:
        if isinstance(exc, self._torch.cuda.OutOfMemoryError):
            gc.collect()
            self._torch.cuda.empty_cache()

    def _deliver(self, req: Request, item: object) -> None:
        try:
            req.deliver(item)
        except RuntimeError:  # the consumer's event loop is gone: nobody is listening
            req.cancelled = True

    def _finish(self, req: Request, reason: str, exc: BaseException | None = None) -> None:
        now = time.perf_counter()
        stats = RequestStats(
            request_id=req.id,
            prompt_tokens=len(req.prompt_ids),
            generated_tokens=len(req.generated),
            finish_reason=reason,
            queued_s=(req.admitted or now) - req.submitted,
            ttft_s=(req.first_token - req.submitted) if req.first_token else None,
            total_s=now - req.submitted,
            error=str(exc) if exc else "",
        )
        self.finished.append(stats)
        log.debug("LLM request %d: %s", req.id, stats)
        if exc is not None and reason != "cancelled":
            if isinstance(exc, AnswerError):
                error = exc
            elif isinstance(exc, self._torch.cuda.OutOfMemoryError):
                error = AnswerError("the GPU ran out of memory for this answer; please try again")
            else:
                error = AnswerError(f"the model failed to answer: {type(exc).__name__}: {exc}")
            self._deliver(req, error)
        else:
            self._deliver(req, Finished(stats))
