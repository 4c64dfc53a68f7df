#!/usr/bin/env python3
"""Writes spec/bot-api-9.1.json: the Bot API specification the sandbox checks requests against,
without descriptions and links (names, types, required flags, return types and subtypes only),
so the binary can embed it. Source: ../shared/telegram-bot-api/bot-api-9.1.json (MIT, see
spec/LICENSE). Usage: scripts/minify_spec.py SOURCE > spec/bot-api-9.1.json"""
import json
import sys


def fields(entry):
    return [
        {"name": f["name"], "types": f["types"], "required": f["required"]}
        for f in entry.get("fields", [])
    ]


source = json.load(open(sys.argv[1]))
out = {
    "version": source["version"],
    "methods": {
        name: {"fields": fields(m), "returns": m["returns"]}
        for name, m in sorted(source["methods"].items())
    },
    "types": {
        name: {k: v for k, v in (("fields", fields(t)), ("subtypes", t.get("subtypes"))) if v}
        for name, t in sorted(source["types"].items())
    },
}
json.dump(out, sys.stdout, separators=(",", ":"))
print()
