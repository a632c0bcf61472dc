"""publish_cent.py --api URL --key K --channel C --count N

Publishes N messages {"n": i} (i = 1..N) to channel C, in order, with the `cent` server API
client; then makes one `batch` call (two publishes to a scratch channel) and one `info` call so
that cent validates their reply shapes. Prints a JSON summary line on stdout; exits non-zero on
any error. Driven by services/herald/tests/sdk.rs.
"""

import argparse
import json
import sys

import cent
from cent import BatchRequest, InfoRequest, PublishRequest


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True, help="server API base URL, e.g. http://host/api")
    p.add_argument("--key", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--count", type=int, required=True)
    args = p.parse_args()

    step = "connect"
    try:
        with cent.Client(args.api, args.key, timeout=5.0) as client:
            step = "publish"
            offsets = []
            for n in range(1, args.count + 1):
                result = client.publish(PublishRequest(channel=args.channel, data={"n": n}))
                offsets.append(result.offset)

            step = "batch"
            scratch = args.channel + "-batch"
            batch = client.batch(
                BatchRequest(
                    requests=[
                        PublishRequest(channel=scratch, data={"batch": 1}),
                        PublishRequest(channel=scratch, data={"batch": 2}),
                    ]
                )
            )
            if len(batch.replies) != 2:
                raise RuntimeError(f"batch: expected 2 replies, got {batch!r}")

            step = "info"
            info = client.info(InfoRequest())
            if not info.nodes:
                raise RuntimeError(f"info: no nodes in {info!r}")
            node = info.nodes[0]
    except Exception as e:  # noqa: BLE001 - report whatever cent raised
        print(f"error: {step}: {type(e).__name__}: {e}", file=sys.stderr)
        print(json.dumps({"event": "error", "step": step, "message": str(e)}), flush=True)
        return 1

    print(
        json.dumps(
            {
                "event": "done",
                "published": args.count,
                "offsets": offsets,
                "batch_replies": len(batch.replies),
                "nodes": len(info.nodes),
                "node": {
                    "uid": node.uid,
                    "name": node.name,
                    "num_clients": node.num_clients,
                    "num_subs": node.num_subs,
                    "num_channels": node.num_channels,
                },
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
