"""What a herald pod of a rendered overlay would run with: its herald.toml and its environment,
built as the kubelet builds it.

Secrets the overlay defines (dev) give their values; Secrets the operator creates get
PLACEHOLDER. `$(VAR)` in a value expands from the container's variables defined earlier in the
list (`$$` is a literal `$`), and stays as written otherwise, as in Kubernetes.
"""
import base64
import os
import re

import yaml

PLACEHOLDER = "validate-deploy-placeholder-0123456789abcdef"


class Pod:
    def __init__(self, rendered):
        self.docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
        self.config = next(d for d in self.docs if d["kind"] == "ConfigMap")["data"]["herald.toml"]
        secrets = {d["metadata"]["name"]: d for d in self.docs if d["kind"] == "Secret"}
        container = self.of_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
        self.env = {}
        for e in container["env"]:
            if "value" in e:
                self.env[e["name"]] = re.sub(
                    r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                    lambda m: "$" if m.group(0) == "$$" else self.env.get(m.group(1), m.group(0)),
                    e["value"],
                )
                continue
            ref = e["valueFrom"]["secretKeyRef"]
            s = secrets.get(ref["name"])
            if s is None:
                # Created by the operator (kubectl create secret); any well-formed value will do.
                self.env[e["name"]] = PLACEHOLDER
            elif "data" in s:
                self.env[e["name"]] = base64.b64decode(s["data"][ref["key"]]).decode()
            else:
                self.env[e["name"]] = s["stringData"][ref["key"]]

    def of_kind(self, kind):
        return next((d for d in self.docs if d["kind"] == kind), None)

    def process_env(self, **overrides):
        """The pod's environment on top of this process's, without this process's HERALD_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(self.env)
        env.update(overrides)
        return env

    def write_config(self, directory):
        path = os.path.join(directory, "herald.toml")
        with open(path, "w") as f:
            f.write(self.config)
        return path
