import asyncio

from looper_engine.events import (
    EpisodeStarted,
    EventBus,
    ModelDelta,
    ToolResult,
    event_from_json,
)


def _started(ep: str) -> EpisodeStarted:
    return EpisodeStarted(
        episode_id=ep,
        task_id="t",
        suite="koans",
        model="scripted:oracle",
        model_label="scripted policy: oracle",
        system_prompt="s",
        task_prompt="t",
        max_steps=3,
        token_budget=100,
    )


async def test_every_subscriber_gets_every_event_in_order_with_per_episode_seq():
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    bus.publish(_started("e1"))
    bus.publish(_started("e2"))
    bus.publish(ToolResult(episode_id="e1", step=1, tool="bash", ok=True, output="x"))
    for sub in (a, b):
        batch = sub.drain()
        assert [(e.episode_id, e.seq) for e in batch] == [("e1", 1), ("e2", 1), ("e1", 2)]


async def test_deltas_of_one_step_coalesce_so_a_slow_reader_sees_the_whole_text():
    bus = EventBus()
    sub = bus.subscribe()
    for ch in "hello world":
        bus.publish(ModelDelta(episode_id="e", step=1, text=ch))
    bus.publish(ModelDelta(episode_id="e", step=2, text="!"))
    batch = sub.drain()
    assert [(e.step, e.text) for e in batch] == [(1, "hello world"), (2, "!")]


async def test_a_bounded_subscriber_drops_only_deltas_never_other_events():
    bus = EventBus()
    sub = bus.subscribe(max_pending=2)
    bus.publish(ModelDelta(episode_id="e", step=1, text="a"))
    bus.publish(ToolResult(episode_id="e", step=1, tool="bash", ok=True, output=""))
    bus.publish(ModelDelta(episode_id="e", step=2, text="b"))  # dropped: queue full
    bus.publish(ToolResult(episode_id="e", step=2, tool="bash", ok=True, output=""))
    kinds = [e.kind for e in sub.drain()]
    assert kinds == ["model_delta", "tool_result", "tool_result"]
    assert sub.dropped_deltas == 1


async def test_publish_never_waits_for_a_subscriber_that_does_not_read():
    bus = EventBus()
    bus.subscribe()  # never read
    for i in range(10_000):
        bus.publish(ToolResult(episode_id="e", step=i, tool="bash", ok=True, output=""))
    # and a reader that waits is woken, then ends when the bus closes
    sub = bus.subscribe()
    got = []

    async def reader():
        async for ev in sub:
            got.append(ev.step)

    task = asyncio.create_task(reader())
    bus.publish(ToolResult(episode_id="e", step=-1, tool="bash", ok=True, output=""))
    await asyncio.sleep(0)
    bus.close()
    await asyncio.wait_for(task, 1)
    assert got == [-1]


def test_events_round_trip_through_json_with_their_kind():
    ev = _started("e9")
    back = event_from_json(ev.model_dump_json())
    assert type(back) is EpisodeStarted and back == ev
