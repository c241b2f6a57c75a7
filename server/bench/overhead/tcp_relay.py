"""The floor for any Python front: bytes from each client connection to the engine and back, as they come, on
uvloop, with no HTTP and no work at all. What the gateway costs above this is what its own code costs.

    mistral-local bench tcp-relay --port 8200 --to 127.0.0.1:8100
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
    finally:
        writer.close()


async def main(port: int, host: str, to_port: int) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        engine_reader, engine_writer = await asyncio.open_connection(host, to_port)
        await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mistral-local bench tcp-relay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT of the engine")
    options = parser.parse_args(argv)
    to_host, to_port = options.to.rsplit(":", 1)
    uvloop.run(main(options.port, to_host, int(to_port)))


if __name__ == "__main__":
    cli()
