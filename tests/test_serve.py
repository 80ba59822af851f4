"""serve: every bad input gets a 422 naming the field; good input 200; a real uvicorn server."""

import threading

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from llmbook_utils.serve import BackgroundServer, ServeConfig, create_app, load_test

LABELS = ["negative", "neutral", "positive"]
CONFIG = ServeConfig(max_text_chars=50, max_prompt_chars=20, max_new_tokens_limit=10)


def fake_classify(texts):
    """Probabilities from the text length: deterministic, so batching can be checked."""
    out = []
    for t in texts:
        z = np.array([len(t) % 3, 1.0, t.count("good")], dtype=float)
        out.append(np.exp(z) / np.exp(z).sum())
    return out


def fake_generate(prompt, max_new_tokens, temperature):
    if "#" in prompt:
        raise ValueError("character '#' is not in the vocabulary")
    return prompt + "a" * max_new_tokens


@pytest.fixture(scope="module")
def client():
    app = create_app(fake_classify, fake_generate, LABELS, CONFIG)
    with TestClient(app) as c:
        yield c


BAD_CLASSIFY = [
    ({"text": ""}, "text"),  # empty
    ({"text": "   "}, "text"),  # blank
    ({"text": "x" * 51}, "text"),  # too long
    ({"text": 5}, "text"),  # wrong type
    ({"text": ["a"]}, "text"),  # wrong type
    ({"text": None}, "text"),
    ({}, "text"),  # missing
    ({"text": "ok", "extra": 1}, "extra"),  # unknown field
]
BAD_GENERATE = [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 21}, "prompt"),
    ({"prompt": 3}, "prompt"),
    ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": 11}, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": -5}, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": "5"}, "max_new_tokens"),  # a string, not an int
    ({"prompt": "hi", "max_new_tokens": 2.5}, "max_new_tokens"),
    ({"prompt": "hi", "temperature": -0.1}, "temperature"),
    ({"prompt": "hi", "temperature": "hot"}, "temperature"),
    ({"prompt": "a#b"}, "prompt"),  # the model rejects a character
]


@pytest.mark.parametrize("body, field", BAD_CLASSIFY, ids=[str(b)[:30] for b, _ in BAD_CLASSIFY])
def test_bad_classify_input_gets_422_naming_the_field(client, body, field):
    response = client.post("/classify", json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert any(field in map(str, e["loc"]) for e in payload["detail"]), payload
    assert field in payload["message"]


@pytest.mark.parametrize("body, field", BAD_GENERATE, ids=[str(b)[:40] for b, _ in BAD_GENERATE])
def test_bad_generate_input_gets_422_naming_the_field(client, body, field):
    response = client.post("/generate", json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert any(field in map(str, e["loc"]) for e in payload["detail"]), payload
    assert payload["message"].startswith(field)


def test_body_that_is_not_json_gets_422(client):
    response = client.post(
        "/classify", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_good_input_gets_200(client):
    response = client.post("/classify", json={"text": "a good day"})
    assert response.status_code == 200
    body = response.json()
    expected = fake_classify(["a good day"])[0]
    assert body["label"] == LABELS[int(np.argmax(expected))]
    assert np.allclose([body["probabilities"][k] for k in LABELS], expected)
    response = client.post(
        "/generate", json={"prompt": "hi", "max_new_tokens": 3, "temperature": 1}
    )
    assert response.status_code == 200 and response.json() == {"text": "hiaaa"}
    assert client.get("/health").json()["status"] == "ok"


def test_create_app_bad_arguments():
    with pytest.raises(ValueError, match="labels"):
        create_app(fake_classify)
    with pytest.raises(ValueError, match="max_batch_size=0"):
        ServeConfig(max_batch_size=0)


def test_real_server_with_dynamic_batching_batches_and_stops():
    config = ServeConfig(dynamic_batching=True, max_batch_size=8, max_wait_ms=20)
    app = create_app(fake_classify, None, LABELS, config)
    texts = [f"tweet number {i} good" * (i % 3 + 1) for i in range(40)]
    with BackgroundServer(app) as server:
        assert server.host == "127.0.0.1"
        result = load_test(server.url + "/classify", [{"text": t} for t in texts], concurrency=8)
        single = httpx.post(server.url + "/classify", json={"text": texts[5]}).json()
        url, thread = server.url, server.thread
    assert result.statuses == [200] * 40 and not result.errors
    assert max(app.state.batcher.batch_sizes) > 1  # concurrent requests shared a batch
    assert np.allclose([single["probabilities"][k] for k in LABELS], fake_classify([texts[5]])[0])
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)
    assert threading.active_count() >= 1


def test_server_listens_on_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        BackgroundServer(create_app(fake_classify, None, LABELS), host="0.0.0.0")


def test_batcher_survives_a_function_that_returns_the_wrong_number_of_outputs():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from llmbook_utils.serve import DynamicBatcher

    def fn(items):  # one output too few for a batch of two, right otherwise
        return [item * 2 for item in items][: max(1, len(items) - 1)]

    async def scenario():
        batcher = DynamicBatcher(fn, max_batch_size=2, max_wait_ms=50)
        await batcher.start()
        both = asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        pair = await asyncio.wait_for(both, timeout=5)
        alone = await asyncio.wait_for(batcher.submit(5), timeout=5)  # the loop still runs
        await batcher.stop()
        return pair, alone

    # Its own thread: the session's playwright browser (conftest) keeps an event loop running in
    # this one for as long as the browser lives, and asyncio.run refuses to start inside it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pair, alone = pool.submit(asyncio.run, scenario()).result(timeout=30)
    assert all(isinstance(result, ValueError) for result in pair), pair  # zip(strict=True)
    assert alone == 10
