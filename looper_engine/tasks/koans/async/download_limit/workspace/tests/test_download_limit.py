import asyncio

import pytest

from downloads import download_all, total_bytes


class FakeCDN:
    def __init__(self):
        self.in_flight = 0
        self.most_in_flight = 0

    async def download(self, url):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            return url.encode()
        finally:
            self.in_flight -= 1


def test_contents():
    cdn = FakeCDN()
    urls = [f"/file/{i}" for i in range(5)]
    contents = asyncio.run(download_all(urls, cdn.download))
    assert contents == {url: url.encode() for url in urls}
    assert total_bytes(contents) == sum(len(url) for url in urls)


def test_respects_limit():
    cdn = FakeCDN()
    asyncio.run(download_all([f"/file/{i}" for i in range(12)], cdn.download, limit=3))
    assert cdn.most_in_flight == 3


def test_limit_of_one_is_sequential():
    cdn = FakeCDN()
    asyncio.run(download_all(["/a", "/b", "/c"], cdn.download, limit=1))
    assert cdn.most_in_flight == 1


def test_bad_limit():
    with pytest.raises(ValueError):
        asyncio.run(download_all(["/a"], FakeCDN().download, limit=0))
