"""Property-based fuzzing of the webhook and the operator API: no input gets a 5xx.

The test client re-raises any exception in the app, so a crash fails the test as surely
as a 500 answer does.
"""

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import github
from tests.unit.webhooks import API_TOKEN, SECRET, fixture

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Paths into a pull_request event whose values the fuzzer replaces.
FIELDS = [
    ("action",),
    ("label",),
    ("sender",),
    ("pull_request",),
    ("pull_request", "number"),
    ("pull_request", "user"),
    ("pull_request", "author_association"),
    ("pull_request", "head"),
    ("pull_request", "head", "sha"),
    ("pull_request", "head", "ref"),
    ("pull_request", "head", "repo"),
    ("pull_request", "base", "repo"),
    ("pull_request", "base", "repo", "full_name"),
]
EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Header values as bytes: HTTP allows any octet but controls, and clients send Latin-1.
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60).map(
    lambda text: text.encode("latin-1")
)


def mutate(payload, path, value):
    target = payload
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return payload


def deliver(client, body, event, delivery, content_type="application/json"):
    headers = {
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github.sign(SECRET.encode(), body),
    }
    return client.post("/webhooks/github", content=body, headers=headers)


@EXAMPLES
@given(
    base=st.sampled_from(
        ["pull_request.opened.json", "pull_request.closed.json", "pull_request.labeled.json"]
    ),
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), max_size=3),
    action=st.sampled_from(["opened", "synchronize", "closed", "labeled", "reopened", "edited"]),
    event=st.sampled_from(["pull_request", "ping", "push", ""]),
    delivery=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=110),
)
def test_signed_mutated_events_never_get_a_5xx(client, base, changes, action, event, delivery):
    payload = fixture(base)
    payload["action"] = action
    for path, value in changes:
        mutate(payload, path, value)
    body = json.dumps(payload).encode()

    response = deliver(client, body, event, delivery)

    assert response.status_code < 500
    assert response.status_code in (200, 202, 400, 422)


@EXAMPLES
@given(body=st.binary(max_size=300), content_type=HEADER_TEXT, signature=HEADER_TEXT)
def test_arbitrary_bodies_never_get_a_5xx(client, body, content_type, signature):
    headers = {
        "Content-Type": content_type,
        "X-GitHub-Event": "pull_request",
        "X-Hub-Signature-256": signature,
    }
    response = client.post("/webhooks/github", content=body, headers=headers)

    assert response.status_code in (401, 413, 415)


@EXAMPLES
@given(body=st.binary(max_size=300))
def test_signed_arbitrary_bodies_never_get_a_5xx(client, body):
    response = deliver(client, body, "pull_request", "fuzz")

    assert response.status_code < 500


@EXAMPLES
@given(
    segments=st.lists(st.text(max_size=20), min_size=1, max_size=4),
    authorization=st.one_of(st.just(f"Bearer {API_TOKEN}".encode()), HEADER_TEXT),
)
def test_api_paths_never_get_a_5xx(client, segments, authorization):
    path = "/api/" + "/".join(quote(segment, safe="") for segment in segments)

    response = client.get(path, headers={"Authorization": authorization})

    assert response.status_code < 500
