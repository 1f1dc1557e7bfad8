"""A TCP proxy that adds latency to every request, for benches/compare.sh.

Usage: python3 latency_proxy.py PORT UPSTREAM_PORT DELAY_MS [LOG]

With LOG, the request line of every request is appended to that file, after the time (seconds,
monotonic) at which it arrived and the connection it came on: to count requests by kind and
see which ones wait for which (the critical path of round trips).

Everything a client sends is held DELAY_MS before it goes upstream; answers come back at once.
An HTTP/1.1 request arrives in one read, so each request (and each new connection's first
bytes) waits DELAY_MS, like a server that far away. It copies bytes and does not parse HTTP,
so it costs little CPU next to the programs measured.
"""
import asyncio
import itertools
import sys
import time

PORT, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
LOG = open(sys.argv[4], "a", buffering=1) if len(sys.argv) > 4 else None
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")
connections = itertools.count()


async def pump(reader, writer, delay, connection=None):
    try:
        while data := await reader.read(1 << 16):
            if LOG and connection is not None and data.startswith(METHODS):
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                LOG.write(f"{time.monotonic():.4f} {connection} {line}\n")
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pump(client_reader, up_writer, DELAY, next(connections)),
        pump(up_reader, client_writer, 0),
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
