"""The lab's load balancer: TCP on :6443 to every master's apiserver on :6444 (as the field's ELB).

Listens on 127.0.0.1 (for the admin kubeconfig and the suite) and on 10.240.0.1, the
machine's end of the lab veth (for the nodes' kubelets and kube-proxies). Each new
connection goes to the next master; a master that refuses is skipped.

    python3 -m seatrials_lab.balancer --listen 127.0.0.1:6443 --backend 10.240.0.11:6444 ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys

CONNECT_TIMEOUT = 3


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


class Balancer:
    def __init__(self, backends: list[tuple[str, int]]):
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self.turn)
        for offset in range(len(self.backends)):
            host, port = self.backends[(start + offset) % len(self.backends)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError):
                continue
        return None

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend = await self.connect()
        if backend is None:
            client_writer.close()
            return
        backend_reader, backend_writer = backend
        await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))


async def serve(listen: list[tuple[str, int]], backends: list[tuple[str, int]]) -> None:
    balancer = Balancer(backends)
    servers = [await asyncio.start_server(balancer.handle, host, port) for host, port in listen]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", action="append", type=address, required=True)
    parser.add_argument("--backend", action="append", type=address, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.listen, args.backend))
    except OSError as e:
        print(f"balancer: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
