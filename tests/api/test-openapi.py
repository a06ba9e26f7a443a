#!/usr/bin/env python3
"""test-openapi: the router and api/openapi.yaml must agree.

tests/api/list-routes prints every registered route as "METHOD PATTERN ROLE".
Every route must be documented (same method, path with {name+} written
{name} and x-greedy: true on that parameter, same x-role), and every
documented operation must be routed. Each operation needs an operationId
(unique), a summary, its path parameters, and the auth answers its role can
give (401 for any token route, 403 above viewer; role none has security: []).
Every $ref must resolve. Speaks TAP.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from smpgw_test import ok, is_eq, diag, done, skip_all  # noqa: E402

top_builddir = os.environ.get("top_builddir", ".")
LIST = os.path.join(top_builddir, "tests", "api", "list-routes")
DOC = os.path.join(top_builddir, "api", "openapi.yaml")
METHODS = ("get", "post", "put", "patch", "delete")
ROLES = ("none", "viewer", "operator", "admin")


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def path_params(doc, item, op):
    """{name: parameter} of the path parameters of an operation (path level, then op level)."""
    params = {}
    for p in (item.get("parameters") or []) + (op.get("parameters") or []):
        if isinstance(p, dict) and "$ref" in p:
            p = resolve(doc, p["$ref"]) or {}
        if isinstance(p, dict) and p.get("in") == "path":
            params[p.get("name")] = p
    return params


def main():
    try:
        import yaml
    except ImportError:
        return skip_all("python3-yaml is not installed")
    if not os.access(LIST, os.X_OK) or not os.path.exists(DOC):
        return skip_all("list-routes or api/openapi.yaml not built")

    out = subprocess.run([LIST], capture_output=True, text=True, timeout=30)
    if not ok(out.returncode == 0, "list-routes registers every route on a zeroed manager"):
        diag(out.stderr)
        return done()
    routes = {}
    for line in out.stdout.splitlines():
        method, pattern, role = line.split()
        ok((method, pattern) not in routes, f"{method} {pattern} registered once")
        routes[(method, pattern)] = role

    with open(DOC) as f:
        text = f.read()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        ok(False, "api/openapi.yaml parses")
        diag(str(e))
        return done()
    ok(isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3."),
       "api/openapi.yaml is an OpenAPI 3 document")
    paths = doc.get("paths") or {}

    # Routes -> document.
    for (method, pattern), role in sorted(routes.items()):
        greedy = re.findall(r"\{([A-Za-z0-9_]+)\+\}", pattern)
        dpath = re.sub(r"\{([A-Za-z0-9_]+)\+\}", r"{\1}", pattern)
        item = paths.get(dpath)
        op = item.get(method.lower()) if isinstance(item, dict) else None
        if not ok(isinstance(op, dict), f"{method} {pattern} is documented"):
            continue
        is_eq(op.get("x-role"), role, f"{method} {pattern}: x-role")
        names = re.findall(r"\{([A-Za-z0-9_]+)\+?\}", pattern)
        params = path_params(doc, item, op)
        is_eq(sorted(params), sorted(names), f"{method} {pattern}: path parameters")
        for n in names:
            p = params.get(n) or {}
            is_eq(bool(p.get("x-greedy")), n in greedy,
                  f"{method} {pattern}: x-greedy on {{{n}}}")

    # Document -> routes, and what every operation must say.
    op_ids = {}
    for dpath, item in sorted(paths.items()):
        if not isinstance(item, dict):
            ok(False, f"{dpath}: a path item")
            continue
        for m in METHODS:
            op = item.get(m)
            if op is None:
                continue
            where = f"{m.upper()} {dpath}"
            greedy = {n for n, p in path_params(doc, item, op).items() if p.get("x-greedy")}
            pattern = re.sub(r"\{([A-Za-z0-9_]+)\}",
                             lambda mo: "{%s+}" % mo.group(1) if mo.group(1) in greedy
                             else mo.group(0), dpath)
            ok((m.upper(), pattern) in routes, f"{where} is routed")
            oid = op.get("operationId")
            ok(isinstance(oid, str) and oid and oid not in op_ids,
               f"{where}: a unique operationId ({oid})")
            op_ids[oid] = where
            ok(isinstance(op.get("summary"), str) and op["summary"], f"{where}: a summary")
            role = op.get("x-role")
            ok(role in ROLES, f"{where}: x-role is one of {', '.join(ROLES)}")
            responses = {str(k) for k in (op.get("responses") or {})}
            ok(any(r.startswith("2") for r in responses), f"{where}: a success response")
            if role == "none":
                is_eq(op.get("security"), [], f"{where}: role none has security: []")
                ok("401" not in responses, f"{where}: role none answers no 401")
            elif role in ROLES:
                ok("401" in responses, f"{where}: documents 401")
                if role != "viewer":
                    ok("403" in responses, f"{where}: documents 403")

    found = []
    refs(doc, found)
    bad = sorted({r for r in found if resolve(doc, r) is None})
    if not ok(not bad, f"every $ref resolves ({len(found)} refs)"):
        diag("\n".join(bad))
    return done()


if __name__ == "__main__":
    sys.exit(main())
