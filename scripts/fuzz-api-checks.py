# Schemathesis checks of our own, loaded by scripts/fuzz-api through
# SCHEMATHESIS_HOOKS: every error the gateway answers is RFC 7807
# problem+json (docs/api.md), whatever raised it.
import ast
import json
import threading

import schemathesis

# Python 3.11 (Debian 12's) keeps the AST converter's recursion depth in
# state its threads share, so two workers parsing at once (Hypothesis
# reads lambdas' source to describe strategies) can fail with "AST
# constructor recursion depth mismatch", a Runtime Error that fails the
# run. One parse at a time; parses are rare and cached.
_parse = ast.parse
_parsing = threading.Lock()


def _parse_alone(*args, **kwargs):
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _parse_alone


@schemathesis.check
def problem_json(ctx, response, case):
    """An error (4xx, 5xx) is application/problem+json with type, title,
    status (the response's own) and detail."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type != "application/problem+json":
        raise AssertionError(
            f"{response.status_code} answered as {content_type or 'no content type'!r}, "
            "not application/problem+json"
        )
    try:
        problem = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code} problem body is not JSON: {e}") from None
    missing = [key for key in ("type", "title", "status", "detail") if key not in problem]
    if missing:
        raise AssertionError(f"{response.status_code} problem lacks {', '.join(missing)}")
    if problem["status"] != response.status_code:
        raise AssertionError(f"problem status {problem['status']} on a {response.status_code} response")
    return None
