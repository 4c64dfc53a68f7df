#!/usr/bin/env python3
"""Writes the Bot API specification the sandbox embeds: names, types, required flags, return types,
subtypes, and the one fixed value a discriminating field has ("status ... always "member"",
"Scope type, must be default"), so a union's member is told apart by its value, not only by its
fields. Descriptions and links are dropped so the binary stays small.
Source: ../shared/telegram-bot-api/bot-api-10.1.json (MIT, see spec/LICENSE).
Usage: crates/sandbox/spec/minify.py SOURCE > crates/sandbox/spec/bot-api-10.1.json"""
import json
import re
import sys

FIXED = [re.compile(r'always "([^"]+)"'), re.compile(r"must be ([a-z_]+)$")]


def fixed_value(field):
    description = field.get("description", "")
    if isinstance(description, list):
        description = " ".join(description)
    if field["types"] != ["String"]:
        return None
    for pattern in FIXED:
        match = pattern.search(description)
        if match:
            return match.group(1)
    return None


def fields(entry):
    out = []
    for f in entry.get("fields", []):
        field = {"name": f["name"], "types": f["types"], "required": f["required"]}
        value = fixed_value(f) if f["required"] else None
        if value is not None:
            field["const"] = value
        out.append(field)
    return out


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
