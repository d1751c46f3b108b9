"""The load balancer in front of the apiservers skips a master that refuses connections."""

import asyncio
import socket

from seatrials_lab.balancer import Balancer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def answer(name: str):
    async def handle(reader, writer):
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def ask_three_times(backends):
    balancer = Balancer(backends)
    front = await asyncio.start_server(balancer.handle, "127.0.0.1", 0)
    port = front.sockets[0].getsockname()[1]
    answers = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers.append((await reader.read()).decode())
        writer.close()
    front.close()
    return answers


def test_connections_rotate_and_skip_a_dead_master():
    async def scenario():
        alive = [await answer("master-1"), await answer("master-2")]
        backends = [("127.0.0.1", s.sockets[0].getsockname()[1]) for s in alive]
        backends.insert(1, ("127.0.0.1", free_port()))  # a master that refuses
        answers = await ask_three_times(backends)
        for s in alive:
            s.close()
        return answers

    answers = asyncio.run(scenario())
    assert set(answers) == {"master-1", "master-2"}
    assert "" not in answers
