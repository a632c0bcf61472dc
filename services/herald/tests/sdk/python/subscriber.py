"""subscriber.py --url WS --token T --channel C --count N [--protobuf] [--timeout S] [--debug]

Connects with centrifuge-python, subscribes to C and prints {"event":"subscribed"} once
subscribed, then {"event":"publication","data":...} per publication (one JSON line each, flushed
at once); exits 0 after N publications, non-zero with a message on stderr on any error or after
the timeout. Driven by services/herald/tests/sdk.rs.
"""

import argparse
import asyncio
import json
import logging
import sys

from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def decode(data, protobuf: bool):
    """Publication data as JSON: with Protobuf the SDK hands over the raw bytes (the JSON text
    the server API published)."""
    if not protobuf:
        return data
    text = bytes(data).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return {"undecodable": text}


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--protobuf", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if args.debug else logging.WARNING
    )

    done: asyncio.Future = asyncio.get_running_loop().create_future()
    received = 0
    finished = False

    def fail(message: str) -> None:
        if not done.done():
            done.set_exception(RuntimeError(message))

    class ClientEvents(ClientEventHandler):
        connected_once = False

        async def on_connected(self, ctx: ConnectedContext) -> None:
            self.connected_once = True
            print(f"connected: client={ctx.client}", file=sys.stderr, flush=True)

        async def on_connecting(self, ctx: ConnectingContext) -> None:
            if self.connected_once and not finished:
                fail(f"connection lost: code={ctx.code} reason={ctx.reason}")

        async def on_disconnected(self, ctx: DisconnectedContext) -> None:
            if not finished:
                fail(f"disconnected: code={ctx.code} reason={ctx.reason}")

        async def on_error(self, ctx: ErrorContext) -> None:
            fail(f"client error: code={ctx.code} error={ctx.error!r}")

    class SubEvents(SubscriptionEventHandler):
        async def on_subscribed(self, ctx: SubscribedContext) -> None:
            emit({"event": "subscribed", "channel": args.channel})
            if args.count == 0 and not done.done():
                done.set_result(None)

        async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
            if not finished:
                fail(f"unsubscribed: code={ctx.code} reason={ctx.reason}")

        async def on_error(self, ctx: SubscriptionErrorContext) -> None:
            fail(f"subscription error: code={ctx.code} error={ctx.error!r}")

        async def on_publication(self, ctx: PublicationContext) -> None:
            nonlocal received
            received += 1
            emit(
                {
                    "event": "publication",
                    "data": decode(ctx.pub.data, args.protobuf),
                    "offset": ctx.pub.offset,
                }
            )
            if received == args.count and not done.done():
                done.set_result(None)

    client = Client(
        args.url,
        events=ClientEvents(),
        token=args.token,
        use_protobuf=args.protobuf,
        # A test must see a broken connection, not ride over it with a reconnect.
        min_reconnect_delay=60.0,
        max_reconnect_delay=60.0,
        proxy=None,
    )
    sub = client.new_subscription(args.channel, events=SubEvents())
    try:
        await client.connect()
        await sub.subscribe()
        await asyncio.wait_for(asyncio.shield(done), timeout=args.timeout)
    except asyncio.TimeoutError:
        print(
            f"error: timeout after {args.timeout}s: received {received} of {args.count}",
            file=sys.stderr,
        )
        emit({"event": "error", "message": "timeout"})
        return 2
    except Exception as e:  # noqa: BLE001 - report whatever the SDK raised
        print(f"error: {e}", file=sys.stderr)
        emit({"event": "error", "message": str(e)})
        return 1
    finally:
        finished = True
        try:
            await asyncio.wait_for(client.disconnect(), timeout=5)
        except Exception as e:  # noqa: BLE001
            print(f"disconnect: {e!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
