"""The benchmark client's own ceiling: a bare websockets server that sends N entry frames.

Run by bench.py as a separate process (`python bench/ceiling.py COUNT`); it prints its port,
then sends COUNT message frames shaped like webchat's to the first client and exits. What the
client counts per second here is the most the tcp→ws row could ever show.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.server import ServerConnection, serve


async def main(count: int) -> None:
    frame = json.dumps(
        {
            "type": "message",
            "id": 1,
            "ts": "2026-11-24T12:00:00.000Z",
            "direction": "in",
            "peer": "127.0.0.1:5555",
            "text": "c" * 63,
        }
    )
    done = asyncio.get_running_loop().create_future()

    async def flood(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "hello"}))
        for _ in range(count):
            await ws.send(frame)
        await ws.wait_closed()
        done.set_result(None)

    async with serve(flood, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await done


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
