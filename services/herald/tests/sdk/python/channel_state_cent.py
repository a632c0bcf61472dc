"""channel_state_cent.py --api URL --key K --channel C [--presence-channel P]

Exercises channel state through the `cent` server API client against a channel C with
history: publishes {"n": 1..5}, retries one publish with an idempotency key, reads history
(all, limit 2, reverse, since), and, with --presence-channel, reads presence and its stats.
Prints one JSON line with what it saw ({"event": "done", ...}); exits non-zero on any error.
Driven by services/herald/tests/sdk.rs, which checks the figures.
"""

import argparse
import json
import sys

import cent
from cent import (
    HistoryRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
)


def offsets(result):
    return [p.offset for p in result.publications]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--presence-channel")
    args = p.parse_args()

    step = "connect"
    out = {"event": "done"}
    try:
        with cent.Client(args.api, args.key, timeout=5.0) as client:
            step = "publish"
            positions = []
            for n in range(1, 6):
                r = client.publish(PublishRequest(channel=args.channel, data={"n": n}))
                positions.append([r.offset, r.epoch])
            out["positions"] = positions

            step = "idempotent publish"
            retries = []
            for _ in range(3):
                r = client.publish(
                    PublishRequest(channel=args.channel, data={"n": 6}, idempotency_key="order-6")
                )
                retries.append(r.offset)
            out["retries"] = retries

            step = "history"
            everything = client.history(HistoryRequest(channel=args.channel, limit=-1))
            out["all"] = offsets(everything)
            out["all_data"] = [pub.data for pub in everything.publications]
            out["top"] = [everything.offset, everything.epoch]
            out["first_two"] = offsets(
                client.history(HistoryRequest(channel=args.channel, limit=2))
            )
            out["newest_two"] = offsets(
                client.history(HistoryRequest(channel=args.channel, limit=2, reverse=True))
            )
            since = StreamPosition(offset=4, epoch=everything.epoch)
            out["after_4"] = offsets(
                client.history(HistoryRequest(channel=args.channel, limit=-1, since=since))
            )

            if args.presence_channel:
                step = "presence"
                presence = client.presence(PresenceRequest(channel=args.presence_channel))
                out["presence_users"] = sorted(c.user for c in presence.presence.values())
                stats = client.presence_stats(PresenceStatsRequest(channel=args.presence_channel))
                out["presence_stats"] = [stats.num_clients, stats.num_users]
    except Exception as e:  # noqa: BLE001 - report whatever cent raised
        print(f"error: {step}: {type(e).__name__}: {e}", file=sys.stderr)
        print(json.dumps({"event": "error", "step": step, "message": str(e)}), flush=True)
        return 1

    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
