"""Recommendation requests answered in batches: the requests that arrive while one batch is computed
wait together, and the next batch answers them in one `Tasteprint.recommend_many` per `k`. A batch
reads the catalogue's item vectors once for all its users (`Embedding.scores_many`), which cut a
worker's CPU per request when many people ask at once, and each person gets the picks they would
get alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

Result = TypeVar("Result")


class Batches(Generic[Result]):
    """Queues (user, k) requests on the running event loop and answers each queue in one step.
    `answer` gives, for users and one k, each user's picks or the error to answer them with, in order;
    `measured` is told each batch's size."""

    def __init__(
        self,
        answer: Callable[[list[str], int], list[Result | Exception]],
        measured: Callable[[int], None] = lambda _: None,
    ):
        self.answer = answer
        self.measured = measured
        self.waiting: list[tuple[str, int, asyncio.Future]] = []

    async def picks(self, user_id: str, k: int) -> Result:
        """`user_id`'s top `k`, answered in the next batch (raises the user's error)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((user_id, k, future))
        if len(self.waiting) == 1:  # the first to wait schedules the batch; the rest join it
            loop.call_soon(self._answer_waiting)
        return await future

    def _answer_waiting(self) -> None:
        batch, self.waiting = self.waiting, []
        self.measured(len(batch))
        by_k: dict[int, list[tuple[str, asyncio.Future]]] = {}
        for user_id, k, future in batch:
            by_k.setdefault(k, []).append((user_id, future))
        for k, asked in by_k.items():
            try:
                results = self.answer([user_id for user_id, _ in asked], k)
            except Exception as exc:  # a fault of ours: each request of the batch answers with it
                results = [exc] * len(asked)
            for (_, future), result in zip(asked, results, strict=True):
                if future.cancelled():  # the client went away
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
