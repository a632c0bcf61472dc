"""Strict offline schema validation of the prometheus-operator objects (ServiceMonitor,
PrometheusRule) in rendered manifests, which kubernetes-validate's bundled schemas do not cover.

    python crds.py RENDERED.yaml...

The schemas come from cloudcoil-models-prometheus-operator (pydantic models generated from the
operator's CRDs, so field names, types, enums and duration patterns are the CRDs'). Like
kubernetes-validate --strict, an unknown field anywhere is an error: every object schema that
lists its properties gets additionalProperties: false (the CRDs leave that out because the API
server prunes unknown fields instead of rejecting them).
Prints nothing but a summary line per file; exits non-zero on the first file with errors.
"""
import sys

import jsonschema
import yaml
from cloudcoil.models.prometheus_operator import v1

GROUP = "monitoring.coreos.com/"
MODELS = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}


def strict(schema):
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


validators = {
    kind: jsonschema.Draft202012Validator(strict(model.model_json_schema(by_alias=True)))
    for kind, model in MODELS.items()
}

failed = False
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d and d["apiVersion"].startswith(GROUP)]
    for doc in docs:
        where = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
        validator = validators.get(doc["kind"])
        if validator is None or doc["apiVersion"] != GROUP + "v1":
            print(f"{where}: no schema for {doc['apiVersion']} {doc['kind']}")
            failed = True
            continue
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            # anyOf/oneOf errors name the whole value; their best match says which field.
            e = jsonschema.exceptions.best_match([e])
            print(f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            failed = True
    print(f"{path}: {len(docs)} prometheus-operator objects checked")
sys.exit(1 if failed else 0)
