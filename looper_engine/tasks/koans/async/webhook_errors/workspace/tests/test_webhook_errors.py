import asyncio

from webhooks import Delivery, failed, notify_all

sent = []


async def post(url, payload):
    await asyncio.sleep(0)
    if "down" in url:
        raise ConnectionError("refused")
    if "slow" in url:
        raise TimeoutError("no answer in 5s")
    sent.append(url)
    return 500 if "broken" in url else 204


def test_all_delivered():
    deliveries = asyncio.run(notify_all(["https://a/hook", "https://b/hook"], {"event": "x"}, post))
    assert [d.ok for d in deliveries] == [True, True]
    assert failed(deliveries) == []


def test_http_error_status():
    [delivery] = asyncio.run(notify_all(["https://broken/hook"], {}, post))
    assert delivery == Delivery("https://broken/hook", 500)
    assert not delivery.ok


def test_unreachable_subscriber():
    sent.clear()
    urls = ["https://down/hook", "https://a/hook", "https://slow/hook"]
    deliveries = asyncio.run(notify_all(urls, {}, post))
    assert all(isinstance(d, Delivery) for d in deliveries)
    assert deliveries[0] == Delivery("https://down/hook", None, "ConnectionError: refused")
    assert deliveries[2].error == "TimeoutError: no answer in 5s"
    assert failed(deliveries) == ["https://down/hook", "https://slow/hook"]
    assert sent == ["https://a/hook"]
