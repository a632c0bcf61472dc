"""`herald check-config` on the herald.toml and environment of each rendered overlay.

    python checkconfig.py HERALD_BIN RENDERED.yaml...
"""
import os
import subprocess
import sys
import tempfile

from pod import Pod

binary, *rendered = sys.argv[1:]
for path in rendered:
    print(f"-- {path}")
    pod = Pod(path)
    with tempfile.TemporaryDirectory() as d:
        config = pod.write_config(d)
        r = subprocess.run([binary, "--config", config, "check-config"], env=pod.process_env(), capture_output=True, text=True)
    print(r.stdout + r.stderr, end="")
    if r.returncode != 0:
        sys.exit(f"{path}: herald check-config failed with exit code {r.returncode}")
    print(f"check-config OK with {binary}")
