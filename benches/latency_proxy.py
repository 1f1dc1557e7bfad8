"""A TCP proxy that adds latency to every request, for benches/compare.sh.

Usage: python3 latency_proxy.py PORT UPSTREAM_PORT DELAY_MS

Everything a client sends is held DELAY_MS before it goes upstream; answers come back at once.
An HTTP/1.1 request arrives in one read, so each request (and each new connection's first
bytes) waits DELAY_MS, like a server that far away. It copies bytes and does not parse HTTP,
so it costs little CPU next to the programs measured.
"""
import asyncio
import sys

PORT, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000


async def pump(reader, writer, delay):
    try:
        while data := await reader.read(1 << 16):
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
        pump(client_reader, up_writer, DELAY), pump(up_reader, client_writer, 0)
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
