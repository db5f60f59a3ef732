#!/usr/bin/env python3
"""An HTTP/1.1 server that answers late without holding a thread per request (asyncio), for
tests of clients that keep many calls in flight.

  GET|POST /late?ms=N     200 with body "late N" after N ms
  GET|POST /skill?ms=N    the same late, answering as a Katy skill: {"messages": ["late N"]}
  (N may be a range A-B: each call's delay drawn from it)
  GET|POST /close         reads the request, sends half a response, closes the connection
  GET|POST /big?bytes=N   200 with a body of N bytes
  ANY /echo               200 with what came: {"method", "headers" (names in lower case), "body"}
  GET /stats              {"in_flight": now, "most_in_flight": highest so far, "connections": opened}

Keeps connections alive. Usage: late_http_server.py PORT
"""
import asyncio
import json
import random
import sys
from urllib.parse import parse_qs, urlsplit

stats = {"in_flight": 0, "most_in_flight": 0, "connections": 0}


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


def answer(status, body, content_type="text/plain"):
    data = body if isinstance(body, bytes) else body.encode()
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def serve(reader, writer):
    stats["connections"] += 1
    try:
        while True:
            method, target, headers, body = await read_request(reader)
            url = urlsplit(target)
            query = parse_qs(url.query)
            if url.path == "/stats":
                writer.write(answer(200, json.dumps(stats), "application/json"))
            elif url.path == "/close":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
                await writer.drain()
                writer.close()
                return
            elif url.path == "/echo":
                seen = {"method": method, "headers": headers, "body": body.decode("latin-1")}
                writer.write(answer(200, json.dumps(seen), "application/json"))
            elif url.path == "/big":
                writer.write(answer(200, b"x" * int(query.get("bytes", ["0"])[0])))
            else:
                stats["in_flight"] += 1
                stats["most_in_flight"] = max(stats["most_in_flight"], stats["in_flight"])
                try:
                    low, _, high = query.get("ms", ["0"])[0].partition("-")
                    ms = random.randint(int(low), int(high or low))
                    await asyncio.sleep(ms / 1000)
                finally:
                    stats["in_flight"] -= 1
                if url.path == "/skill":
                    writer.write(answer(200, json.dumps({"messages": [f"late {ms}"]}), "application/json"))
                else:
                    writer.write(answer(200, f"late {ms}"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
