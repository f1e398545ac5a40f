import json
from pathlib import Path

import pytest

from bridge import github
from bridge.forge import PayloadError, PullRequestEvent

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_signature_vector_verifies():
    delivery = load("pull_request.closed.delivery.json")
    body = (FIXTURES / "pull_request.closed.delivery.raw-body.json").read_bytes()
    header = delivery["headers"]["X-Hub-Signature-256"]

    assert github.signature_is_valid(b"abc123", body, header)


@pytest.mark.parametrize(
    ("secret", "body_suffix", "header"),
    [
        (b"abc124", b"", "keep"),
        (b"abc123", b" ", "keep"),
        (b"abc123", b"", None),
        (b"abc123", b"", ""),
        (b"abc123", b"", "sha1=de2e98ffa98db839b50abd0a43458aab9980747a"),
        (b"abc123", b"", "sha256="),
        (b"abc123", b"", "sha256=" + "é" * 64),
    ],
    ids=[
        "wrong-secret",
        "changed-body",
        "missing",
        "empty",
        "sha1-only",
        "empty-digest",
        "non-ascii",
    ],
)
def test_signature_rejected(secret, body_suffix, header):
    delivery = load("pull_request.closed.delivery.json")
    body = (FIXTURES / "pull_request.closed.delivery.raw-body.json").read_bytes() + body_suffix
    if header == "keep":
        header = delivery["headers"]["X-Hub-Signature-256"]

    assert not github.signature_is_valid(secret, body, header)


def test_sign_matches_vector():
    delivery = load("pull_request.closed.delivery.json")
    body = (FIXTURES / "pull_request.closed.delivery.raw-body.json").read_bytes()

    assert github.sign(b"abc123", body) == delivery["headers"]["X-Hub-Signature-256"]


@pytest.mark.parametrize(
    ("name", "action", "number", "sha", "ref"),
    [
        (
            "pull_request.opened.json",
            "deploy",
            2,
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "changes",
        ),
        (
            "pull_request.synchronize.json",
            "deploy",
            2,
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "changes",
        ),
        (
            "pull_request.reopened.json",
            "deploy",
            2,
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "changes",
        ),
        (
            "pull_request.closed.json",
            "cleanup",
            2,
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "changes",
        ),
        (
            "pull_request.closed.merged.json",
            "cleanup",
            62,
            "c88b9ee719285134957cbc698c9b7ef9b78007bf",
            "anbraten-patch-3",
        ),
        (
            "pull_request.opened.repo-is-fork.json",
            "deploy",
            1,
            "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
            "master",
        ),
    ],
)
def test_parse_fixture(name, action, number, sha, ref):
    event = github.parse_pull_request(load(name), "delivery-1")

    assert isinstance(event, PullRequestEvent)
    assert not event.from_fork
    request = event.request
    assert request.action == action
    assert request.number == number
    assert request.sha == sha
    assert request.ref == ref


def test_parse_delivery_body():
    body = load("pull_request.closed.delivery.json")["body"]

    event = github.parse_pull_request(body, "ebfa5590-4d78-11ee-9662-d5d5634b1601")

    assert isinstance(event, PullRequestEvent)
    request = event.request
    assert request.action == "cleanup"
    assert request.number == 14
    assert request.repository == "taskcluster/tc-dev-integration-test"


def test_parse_labeled_carries_the_label_and_sender():
    event = github.parse_pull_request(load("pull_request.labeled.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "deploy"
    assert event.label == "bug"
    assert event.sender == "Codertocat"
    assert event.association == "OWNER"


def test_parse_missing_head():
    payload = load("pull_request.opened.json")
    del payload["pull_request"]["head"]

    with pytest.raises(PayloadError, match="head"):
        github.parse_pull_request(payload, "")


def test_parse_number_of_wrong_type():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["number"] = True

    with pytest.raises(PayloadError, match="number"):
        github.parse_pull_request(payload, "")


def test_parse_invalid_sha():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["sha"] = "$(touch /tmp/canary)"

    with pytest.raises(PayloadError, match=r"pull_request\.head\.sha"):
        github.parse_pull_request(payload, "")


def test_fork_pull_request_is_marked():
    event = github.parse_pull_request(load("pull_request.opened.fork.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork
    assert event.association == "CONTRIBUTOR"


def test_deleted_fork_is_marked():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["repo"] = None

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork


def test_fork_pull_request_is_cleaned_up():
    payload = load("pull_request.opened.fork.json")
    payload["action"] = "closed"

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "cleanup"


@pytest.mark.parametrize("action", [["opened"], {"a": 1}, None, 5])
def test_parse_action_of_wrong_type(action):
    payload = load("pull_request.opened.json")
    payload["action"] = action

    with pytest.raises(PayloadError, match="action"):
        github.parse_pull_request(payload, "")


def test_cleanup_with_invalid_ref_still_cleans_up():
    payload = load("pull_request.closed.json")
    payload["pull_request"]["head"]["ref"] = "ブ" * 100
    payload["pull_request"]["user"]["login"] = "not a login"

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    request = event.request
    assert request.action == "cleanup"
    assert request.ref == ""
    assert request.author == ""


def test_deploy_with_ref_over_255_bytes_rejected():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["ref"] = "ブ" * 100

    with pytest.raises(PayloadError, match=r"pull_request\.head\.ref: must be 1 to 255 bytes"):
        github.parse_pull_request(payload, "")
