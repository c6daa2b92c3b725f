import asyncio

from health import check, check_all, unhealthy


async def probe(url):
    await asyncio.sleep(0)
    if "down" in url:
        raise ConnectionRefusedError(url)
    return "degraded" not in url


def test_single_check():
    assert asyncio.run(check("http://a/health", probe)) == ("http://a/health", True)
    assert asyncio.run(check("http://down/health", probe)) == ("http://down/health", False)


def test_check_all():
    urls = ["http://a/health", "http://down/health", "http://degraded/health"]
    results = asyncio.run(check_all(urls, probe))
    assert results == {urls[0]: True, urls[1]: False, urls[2]: False}
    assert unhealthy(results) == [urls[2], urls[1]]


def test_no_urls():
    assert asyncio.run(check_all([], probe)) == {}
