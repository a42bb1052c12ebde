"""Child process for the crash test: adds outbox events forever, printing each uid once durable."""

import asyncio
import sys
from pathlib import Path

from toyd.outbox import Outbox


async def main(path: str, critical_every: int) -> None:
    outbox = await Outbox(Path(path), max_items=1_000_000).open()
    n = 0
    while True:
        uid = await outbox.add(
            "transcript", {"n": n, "text": "hello " * 20}, critical=n % critical_every == 0
        )
        sys.stdout.write(uid + "\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
