"""A model behind an HTTP API: FastAPI app, dynamic batching, a uvicorn server on 127.0.0.1.

- ``create_app(classify=..., generate=..., labels=..., config=ServeConfig(...))`` builds a
  FastAPI app with ``POST /classify`` (``{"text": ...}`` -> label and class probabilities),
  ``POST /generate`` (``{"prompt": ..., "max_new_tokens": ..., "temperature": ...}`` -> text)
  and ``GET /health``. Requests are pydantic models in strict mode with bounds from the
  config, so an empty or blank text, a text that is too long, a wrong type, an unknown field or
  a ``max_new_tokens`` out of range gets HTTP 422 whose ``detail`` names the field (``loc``)
  and whose ``message`` says what is wrong, before the model is called.
- ``DynamicBatcher``: with ``dynamic_batching=True``, concurrent ``/classify`` requests wait up
  to ``max_wait_ms`` in a queue and run through the model as one batch of at most
  ``max_batch_size`` texts. Without it, each request runs alone; a lock lets one forward pass
  run at a time in both modes (one model, one set of CPU cores).
- ``BackgroundServer``: runs uvicorn in a background thread on 127.0.0.1 and a free port, and
  stops it cleanly (``should_exit``, then the thread is joined).
- ``load_test``: sends requests with bounded concurrency and reports latency percentiles and
  throughput.

This module does not use ``from __future__ import annotations``: the request models are built
inside ``create_app`` from the config, and pydantic must see their annotations as objects.
"""

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """Limits and batching of the app."""

    max_text_chars: int = 2_000  # longest /classify text accepted
    max_prompt_chars: int = 1_000  # longest /generate prompt accepted
    max_new_tokens_limit: int = 256  # largest max_new_tokens accepted
    dynamic_batching: bool = False  # group concurrent /classify requests into batches
    max_batch_size: int = 16  # texts per batch at most
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company

    def __post_init__(self) -> None:
        limits = ("max_text_chars", "max_prompt_chars", "max_new_tokens_limit", "max_batch_size")
        for name in limits:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms} must be >= 0")


class DynamicBatcher:
    """Collect single requests into batches for a function of a list of inputs.

    Args:
        fn: maps a list of inputs to a list of outputs of the same length (runs in a thread).
        max_batch_size: the most inputs per call.
        max_wait_ms: after the first input arrives, wait at most this long for more.
    """

    def __init__(self, fn: Callable[[list], Sequence], max_batch_size: int, max_wait_ms: float):
        self.fn, self.max_batch_size, self.max_wait = fn, max_batch_size, max_wait_ms / 1000
        self.batch_sizes: list[int] = []  # the size of every batch run, for measurements
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, item: Any) -> Any:
        """Queue one input and wait for its output."""
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            self.batch_sizes.append(len(batch))
            try:
                outputs = await loop.run_in_executor(None, self.fn, [item for item, _ in batch])
                results = list(zip(batch, outputs, strict=True))  # fn must return one per input
            except Exception as err:  # the callers get the error, the loop goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), output in results:
                if not future.done():
                    future.set_result(output)


def _message(errors: Sequence[dict]) -> str:
    """'text: String should have at least 1 character; ...' from pydantic's error list."""
    parts = []
    for error in errors:
        loc = [str(x) for x in error.get("loc", ()) if x != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(
    classify: Callable[[list[str]], Any] | None = None,
    generate: Callable[[str, int, float], str] | None = None,
    labels: Sequence[str] | None = None,
    config: ServeConfig | None = None,
):
    """The FastAPI app serving a classifier and/or a text generator.

    Args:
        classify: maps a list of texts to class probabilities (B, K) (a list or array).
        generate: ``generate(prompt, max_new_tokens, temperature) -> text``; a ``ValueError``
            it raises (e.g. a character the model does not know) becomes a 422 on ``prompt``.
        labels: the K class names of ``classify``.
        config: limits and batching.

    Returns:
        A ``fastapi.FastAPI``; ``app.state.batcher`` is the ``DynamicBatcher`` (or None).
    """
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

    config = config or ServeConfig()
    if classify is None and generate is None:
        raise ValueError("create_app needs classify, generate or both")
    if classify is not None and not labels:
        raise ValueError("classify needs the class names: labels=[...]")
    labels = list(labels or [])
    model_lock = threading.Lock()  # one forward pass at a time

    def run_classify(texts: list[str]) -> list[list[float]]:
        with model_lock:
            return [list(map(float, row)) for row in classify(texts)]

    def run_generate(prompt: str, max_new_tokens: int, temperature: float) -> str:
        with model_lock:
            return generate(prompt, max_new_tokens, temperature)

    def not_blank(value: str) -> str:
        if not value.strip():
            raise ValueError("must contain a non-whitespace character")
        return value

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        text: Annotated[str, StringConstraints(min_length=1, max_length=config.max_text_chars)]

        @field_validator("text")
        @classmethod
        def _text_not_blank(cls, value: str) -> str:
            return not_blank(value)

    class ClassifyResponse(BaseModel):
        label: str
        probabilities: dict[str, float]

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        prompt: Annotated[str, StringConstraints(min_length=1, max_length=config.max_prompt_chars)]
        max_new_tokens: int = Field(32, ge=1, le=config.max_new_tokens_limit)
        temperature: float = Field(0.0, ge=0.0, le=2.0)

    class GenerateResponse(BaseModel):
        text: str

    batcher = None
    if classify is not None and config.dynamic_batching:
        batcher = DynamicBatcher(run_classify, config.max_batch_size, config.max_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if batcher is not None:
            await batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()

    app = FastAPI(title="llmbook model server", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.config = config

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors, "message": _message(errors)}, status_code=422)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "dynamic_batching": batcher is not None}

    if classify is not None:

        @app.post("/classify", response_model=ClassifyResponse)
        async def classify_endpoint(request: ClassifyRequest) -> ClassifyResponse:
            if batcher is not None:
                probs = await batcher.submit(request.text)
            else:
                probs = (await run_in_threadpool(run_classify, [request.text]))[0]
            best = int(np.argmax(probs))
            return ClassifyResponse(
                label=labels[best], probabilities=dict(zip(labels, probs, strict=True))
            )

    if generate is not None:

        @app.post("/generate", response_model=GenerateResponse)
        async def generate_endpoint(request: GenerateRequest):
            try:
                text = await run_in_threadpool(
                    run_generate, request.prompt, request.max_new_tokens, request.temperature
                )
            except ValueError as err:  # e.g. a character the model does not know: 422 as above
                raise RequestValidationError(
                    [{"type": "value_error", "loc": ["body", "prompt"], "msg": str(err)}]
                ) from err
            return GenerateResponse(text=text)

    return app


# ---------------------------------------------------------------------------------------------
# Running and measuring
# ---------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it); IPv4 or IPv6 host."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """uvicorn serving ``app`` on 127.0.0.1 from a background thread.

    Use as a context manager, or call ``start()`` and ``stop()``::

        with BackgroundServer(app) as server:
            httpx.get(server.url + "/health")

    Args:
        app: an ASGI app, e.g. from ``create_app``.
        host: a loopback address; the book never listens on other interfaces.
        port: default a free port.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        if host not in LOOPBACK:
            raise ValueError(
                f"host={host!r}: the book's server listens on loopback only {LOOPBACK}"
            )
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url} within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit (finishing requests in flight) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"uvicorn on {self.url} did not stop within {2 * timeout} s")

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LoadResult:
    """Latencies (ms) and statuses of a load test, and its wall-clock time (s)."""

    latencies_ms: np.ndarray
    statuses: list[int]
    seconds: float
    concurrency: int
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.latencies_ms),
            "concurrency": self.concurrency,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "requests_per_s": self.requests_per_s,
            "ok_share": float(np.mean([s == 200 for s in self.statuses])),
        }


def load_test(
    url: str, payloads: Sequence[dict], concurrency: int = 8, timeout: float = 60.0
) -> LoadResult:
    """POST every payload to ``url`` with at most ``concurrency`` requests in flight.

    ``concurrency`` client threads each send their share of the payloads one after another
    (a closed loop: a client sends its next request when the previous answer arrives).

    Args:
        url: e.g. ``server.url + "/classify"``.
        payloads: the JSON bodies.
        concurrency: clients sending at the same time.
        timeout: seconds before a request counts as failed.
    """
    import httpx

    if concurrency < 1 or not payloads:
        raise ValueError(f"need concurrency >= 1 and payloads, got {concurrency}, {len(payloads)}")
    latencies = np.zeros(len(payloads))
    statuses = [0] * len(payloads)
    errors: list[str] = []

    def client(worker: int) -> None:
        with httpx.Client(timeout=timeout) as session:
            for i in range(worker, len(payloads), concurrency):
                start = time.perf_counter()
                try:
                    statuses[i] = session.post(url, json=payloads[i]).status_code
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                latencies[i] = 1000 * (time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    return LoadResult(latencies, statuses, time.perf_counter() - start, concurrency, errors)
