import asyncio

from auditwriter import AuditWriter


def run(events):
    async def scenario():
        sink = []
        writer = AuditWriter(sink)
        for event in events:
            writer.submit(event)
        await writer.flush()
        return sink, writer.pending

    return asyncio.run(scenario())


def test_flush_nothing():
    assert run([]) == ([], 0)


def test_flush_one():
    assert run(["login"]) == (["login"], 0)


def test_flush_many():
    sink, pending = run(["login", "view", "edit", "logout"])
    assert sorted(sink) == ["edit", "login", "logout", "view"]
    assert pending == 0
