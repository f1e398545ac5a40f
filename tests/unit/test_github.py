import hashlib
import hmac
import json
from pathlib import Path

import pytest

from bridge import github
from bridge.forge import PullRequestEvent

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SECRET = b"abc123"
SHA_2 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA_36 = "b12ead3c5f3499e34356c970e20d7858f1747542"


def load(name: str) -> dict:
    """Return a fixture's body, unwrapping a *.delivery.json {headers, body} capture."""
    document = json.loads((FIXTURES / name).read_text())
    return document["body"] if name.endswith(".delivery.json") else document


def headers(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["headers"]


def raw_body(name: str) -> bytes:
    return (FIXTURES / name.replace(".json", ".raw-body.json")).read_bytes()


def compact_body(name: str) -> bytes:
    """Return the bytes a capture's signature covers: the compact JSON that Taskcluster signs."""
    return json.dumps(load(name), separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("name", ["pull_request.closed.delivery.json", "push.delivery.json"])
def test_signature_vector_verifies(name):
    header = headers(name)["X-Hub-Signature-256"]

    assert github.signature_is_valid(SECRET, raw_body(name), header)


@pytest.mark.parametrize("name", ["pull_request.closed.delivery.json", "push.delivery.json"])
def test_sign_matches_vector(name):
    assert github.sign(SECRET, raw_body(name)) == headers(name)["X-Hub-Signature-256"]


@pytest.mark.parametrize(
    "name",
    [
        "pull_request.opened.delivery.json",
        "pull_request.opened.head-repo-null.delivery.json",
        "pull_request.opened.head-repo-null.minimal.delivery.json",
    ],
)
def test_sha1_only_vector_rejected(name):
    """These captures carry only the legacy SHA-1 signature, which the bridge does not accept."""
    sent = headers(name)
    body = compact_body(name)
    sha1 = "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()

    assert sent["X-Hub-Signature"] == sha1
    assert "X-Hub-Signature-256" not in sent
    assert not github.signature_is_valid(SECRET, body, sent["X-Hub-Signature"])
    assert not github.signature_is_valid(SECRET, body, None)


def test_raw_body_is_compact_body():
    assert raw_body("pull_request.opened.delivery.json") == compact_body(
        "pull_request.opened.delivery.json"
    )


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
        (b"abc123", b"", "sha256=" + "\ud800" * 64),
        (b"abc123", b"", "sha256=" + "ブ" * 64),
        (b"abc123", b"", "upper"),
    ],
    ids=[
        "wrong-secret",
        "changed-body",
        "missing",
        "empty",
        "sha1-only",
        "empty-digest",
        "latin-1",
        "lone-surrogate",
        "non-latin-1",
        "uppercase-hex",
    ],
)
def test_signature_rejected(secret, body_suffix, header):
    name = "pull_request.closed.delivery.json"
    body = raw_body(name) + body_suffix
    if header == "keep":
        header = headers(name)["X-Hub-Signature-256"]
    elif header == "upper":
        header = "sha256=" + headers(name)["X-Hub-Signature-256"].removeprefix("sha256=").upper()

    assert not github.signature_is_valid(secret, body, header)


# Every pull_request fixture: the run it starts (None: ignored), number, head SHA, fork.
PULL_REQUEST_FIXTURES = [
    ("pull_request.opened.json", "deploy", 2, SHA_2, False),
    ("pull_request.synchronize.json", "deploy", 2, SHA_2, False),
    ("pull_request.reopened.json", "deploy", 2, SHA_2, False),
    ("pull_request.labeled.json", "deploy", 2, SHA_2, False),
    ("pull_request.closed.json", "cleanup", 2, SHA_2, False),
    (
        "pull_request.closed.merged.json",
        "cleanup",
        62,
        "c88b9ee719285134957cbc698c9b7ef9b78007bf",
        False,
    ),
    (
        "pull_request.closed.not-merged.json",
        "cleanup",
        62,
        "c88b9ee719285134957cbc698c9b7ef9b78007bf",
        False,
    ),
    (
        "pull_request.opened.repo-is-fork.json",
        "deploy",
        1,
        "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
        False,
    ),
    (
        "pull_request.opened.fork.json",
        "deploy",
        342,
        "528b803be6f93e19ca4130bf4976f2800a3004c4",
        True,
    ),
    (
        "pull_request.opened.fork.member.json",
        "deploy",
        217,
        "5864e328f129b98726813940b5bfa44707963bdc",
        True,
    ),
    (
        "pull_request.synchronize.fork.json",
        "deploy",
        4418,
        "98c722169d72dfeacc7aee065cf807cad6b60352",
        True,
    ),
    ("pull_request.opened.delivery.json", "deploy", 36, SHA_36, False),
    ("pull_request.opened.head-repo-null.delivery.json", "deploy", 36, SHA_36, True),
    ("pull_request.opened.head-repo-null.minimal.delivery.json", "deploy", 1, "a" * 40, True),
    (
        "pull_request.closed.delivery.json",
        "cleanup",
        14,
        "a2b6ebe87a7f2bea428d945a8f1f0ce1df6478c5",
        False,
    ),
    ("pull_request.edited.json", None, 1, None, None),
    ("pull_request.edited.base-changed.json", None, 262, None, None),
    ("pull_request.unlabeled.json", None, 2, None, None),
]


@pytest.mark.parametrize(("name", "action", "number", "sha", "from_fork"), PULL_REQUEST_FIXTURES)
def test_parse_fixture(name, action, number, sha, from_fork):
    event = github.parse_pull_request(load(name), "delivery-1")

    if action is None:
        assert isinstance(event, github.Ignored)
        assert repr(load(name)["action"]) in event.reason
        return
    assert isinstance(event, PullRequestEvent)
    assert event.request.action == action
    assert event.request.number == number
    assert event.request.sha == sha
    assert event.from_fork is from_fork
    assert event.request.delivery == "delivery-1"


def test_every_pull_request_fixture_is_listed():
    listed = {row[0] for row in PULL_REQUEST_FIXTURES}
    on_disk = {
        path.name
        for path in FIXTURES.glob("pull_request.*.json")
        if not path.name.endswith(".raw-body.json")
    }

    assert listed == on_disk


@pytest.mark.parametrize(
    "name", ["ping.json", "ping.with-app_id.json", "push.json", "push.delivery.json"]
)
def test_non_pull_request_body_rejected(name):
    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(load(name), "")

    assert caught.value.field == "action"


def test_push_delivery_event_header():
    assert headers("push.delivery.json")["X-GitHub-Event"] == "push"
    assert headers("pull_request.closed.delivery.json")["X-GitHub-Event"] == "pull_request"


def test_parse_reads_request_fields():
    event = github.parse_pull_request(load("pull_request.opened.json"), "delivery-1")

    assert isinstance(event, PullRequestEvent)
    assert event.request.ref == "changes"
    assert event.request.author == "Codertocat"
    assert event.request.repository == "Codertocat/Hello-World"
    assert event.association == "OWNER"
    assert event.sender == "Codertocat"
    assert event.label is None


def test_parse_delivery_body():
    body = load("pull_request.closed.delivery.json")

    event = github.parse_pull_request(body, "ebfa5590-4d78-11ee-9662-d5d5634b1601")

    assert isinstance(event, PullRequestEvent)
    assert event.request.repository == "taskcluster/tc-dev-integration-test"
    assert event.request.delivery == "ebfa5590-4d78-11ee-9662-d5d5634b1601"


def test_parse_labeled_carries_label():
    event = github.parse_pull_request(load("pull_request.labeled.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.label == "bug"


def test_parse_labeled_without_label_name():
    payload = load("pull_request.labeled.json")
    del payload["label"]["name"]

    with pytest.raises(github.PayloadError, match=r"label\.name"):
        github.parse_pull_request(payload, "")


def test_parse_missing_association_is_empty():
    event = github.parse_pull_request(load("pull_request.opened.delivery.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.association == ""


def test_fork_pull_request_reports_fork():
    event = github.parse_pull_request(load("pull_request.opened.fork.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork
    assert event.association == "CONTRIBUTOR"
    assert event.request.repository == "packit-service/packit"


def test_fork_compared_by_full_name_without_ids():
    payload = load("pull_request.opened.fork.json")
    del payload["pull_request"]["head"]["repo"]["id"]

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork


def test_deleted_fork_reports_fork():
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
    assert event.from_fork


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (("pull_request",), "pull_request"),
        (("pull_request", "head"), "pull_request.head"),
        (("pull_request", "base"), "pull_request.base"),
        (("pull_request", "number"), "pull_request.number"),
        (("pull_request", "head", "sha"), "pull_request.head.sha"),
        (("pull_request", "head", "ref"), "pull_request.head.ref"),
        (("pull_request", "base", "repo", "full_name"), "pull_request.base.repo.full_name"),
    ],
)
def test_parse_missing_field(remove, field):
    payload = load("pull_request.opened.json")
    parent = payload
    for key in remove[:-1]:
        parent = parent[key]
    del parent[remove[-1]]

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == field


def test_parse_number_of_wrong_type():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["number"] = True

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.number"


@pytest.mark.parametrize(
    "sha", ["$(touch /tmp/canary)", "EC26C3E57CA3A959CA5AAD62DE7213C562F8C821", "ec26c3e"]
)
def test_parse_invalid_sha(sha):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["sha"] = sha

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.head.sha"


@pytest.mark.parametrize("ref", ["ブ" * 100, "--upload-pack=x", "a..b", "with space"])
def test_parse_invalid_ref(ref):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["ref"] = ref

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.head.ref"


def test_parse_invalid_login():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["user"]["login"] = "-rf"

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.user.login"


def test_parse_invalid_delivery():
    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(load("pull_request.opened.json"), "id; rm -rf /")

    assert caught.value.field == "X-GitHub-Delivery"


@pytest.mark.parametrize("action", [["opened"], {"a": 1}, None, 5])
def test_parse_action_of_wrong_type(action):
    payload = load("pull_request.opened.json")
    payload["action"] = action

    with pytest.raises(github.PayloadError, match="action"):
        github.parse_pull_request(payload, "")


def test_cleanup_with_invalid_fields_still_cleans_up():
    payload = load("pull_request.closed.json")
    payload["pull_request"]["head"]["ref"] = "ブ" * 100
    payload["pull_request"]["head"]["sha"] = "not a sha"
    payload["pull_request"]["user"]["login"] = "not a login"
    payload["pull_request"]["base"]["repo"]["full_name"] = "no-slash"

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "cleanup"
    assert event.request.number == 2
    assert event.request.sha is None
    assert event.request.ref == ""
    assert event.request.author == ""
    assert event.request.repository == ""


def test_cleanup_without_head_still_cleans_up():
    payload = load("pull_request.closed.json")
    del payload["pull_request"]["head"]
    del payload["pull_request"]["base"]

    event = github.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "cleanup"
    assert event.from_fork


def test_cleanup_needs_number():
    payload = load("pull_request.closed.json")
    payload["pull_request"]["number"] = "2"

    with pytest.raises(github.PayloadError) as caught:
        github.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.number"
