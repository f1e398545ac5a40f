import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from bridge import gitea, github
from bridge.forge import PullRequestEvent

FIXTURES = Path(__file__).parent.parent / "fixtures"
GITEA = FIXTURES / "gitea"
FORGEJO_CAPTURE = FIXTURES / "forgejo" / "pull_request.synchronized.fork.fedmsg.json"

# Secrets and X-Gitea-Signature values of the signature test vectors.
PLAYGROUND_SECRET = b"IsWishesWereHorsesWedAllBeEatingSteak!"
SIGNATURE_VECTORS = [
    (
        "pull_request.opened.fork.json",
        PLAYGROUND_SECRET,
        "65c18a212efc7bde0f336acaec87f596fe20e80b2a0e7e51a790dd38393ff771",
    ),
    (
        "push.json",
        PLAYGROUND_SECRET,
        "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915",
    ),
    (
        "pull_request.edited.json",
        b"71295b197fa25f4356d2fb9965df3f2379d903d7",
        "a31111f057bafe895837f4a93c0f1f528919c199a20438b1fc8e23485780a33a",
    ),
]
SHA_1 = "2eba238e33607c1fa49253182e9fff42baafa1eb"


def load(name: str) -> dict:
    return json.loads((GITEA / name).read_text())


def forgejo_capture() -> dict:
    """Return the Fedora Messaging envelope around a real Forgejo delivery."""
    return json.loads(FORGEJO_CAPTURE.read_text())


@pytest.mark.parametrize(("name", "secret", "signature"), SIGNATURE_VECTORS)
def test_signature_vector_verifies(name, secret, signature):
    body = (GITEA / name).read_bytes()

    assert gitea.signature_is_valid(secret, body, signature)


@pytest.mark.parametrize(("name", "secret", "signature"), SIGNATURE_VECTORS)
def test_sign_matches_vector(name, secret, signature):
    body = (GITEA / name).read_bytes()

    assert gitea.sign(secret, body) == signature
    # Gitea also sends X-Hub-Signature-256, the same digest with GitHub's prefix.
    assert github.sign(secret, body) == "sha256=" + signature


@pytest.mark.parametrize(
    ("secret", "body_suffix", "header"),
    [
        (b"wrong", b"", "keep"),
        (PLAYGROUND_SECRET, b"\n", "keep"),
        (PLAYGROUND_SECRET, b"", None),
        (PLAYGROUND_SECRET, b"", ""),
        (PLAYGROUND_SECRET, b"", "prefixed"),
        (PLAYGROUND_SECRET, b"", "upper"),
        (PLAYGROUND_SECRET, b"", "truncated"),
        (PLAYGROUND_SECRET, b"", "é" * 64),
        (PLAYGROUND_SECRET, b"", "\ud800" * 64),
        (PLAYGROUND_SECRET, b"", "ブ" * 64),
    ],
    ids=[
        "wrong-secret",
        "changed-body",
        "missing",
        "empty",
        "sha256-prefix",
        "uppercase-hex",
        "truncated",
        "latin-1",
        "lone-surrogate",
        "non-latin-1",
    ],
)
def test_signature_rejected(secret, body_suffix, header):
    name, _, signature = SIGNATURE_VECTORS[0]
    body = (GITEA / name).read_bytes() + body_suffix
    header = {
        "keep": signature,
        "prefixed": "sha256=" + signature,
        "upper": signature.upper(),
        "truncated": signature[:-1],
    }.get(header, header)

    assert not gitea.signature_is_valid(secret, body, header)


def test_forgejo_capture_headers():
    sent = forgejo_capture()["headers"]

    assert gitea.event_type(sent) == "pull_request_sync"
    assert gitea.is_pull_request_event(sent)
    assert gitea.delivery_id(sent) == "f4b1fbff-9f0c-49ba-aac6-f27ee2c0e905"
    assert gitea.signature_header(sent) == sent["x-forgejo-signature"]
    assert sent["x-forgejo-signature"] == sent["x-gitea-signature"]


@pytest.mark.parametrize(
    ("sent", "event_type", "is_pull_request"),
    [
        (
            {"X-Gitea-Event": "pull_request", "X-Gitea-Event-Type": "pull_request_sync"},
            "pull_request_sync",
            True,
        ),
        (
            {"X-Gitea-Event": "pull_request", "X-Gitea-Event-Type": "pull_request"},
            "pull_request",
            True,
        ),
        ({"X-Gitea-Event": "pull_request_label"}, "pull_request_label", True),
        (
            {
                "X-Forgejo-Event": "pull_request",
                "X-Forgejo-Event-Type": "pull_request_review_request",
            },
            "pull_request_review_request",
            True,
        ),
        ({"x-gitea-event": "pull_request"}, "pull_request", True),
        ({"X-Gitea-Event": "push", "X-Gitea-Event-Type": "push"}, "push", False),
        (
            {"X-Gitea-Event": "issue_comment", "X-Gitea-Event-Type": "pull_request_comment"},
            "pull_request_comment",
            False,
        ),
        (
            {
                "X-Gitea-Event": "pull_request_approved",
                "X-Gitea-Event-Type": "pull_request_review_approved",
            },
            "pull_request_review_approved",
            False,
        ),
        ({"X-GitHub-Event": "pull_request"}, "", False),
        ({}, "", False),
    ],
)
def test_event_type(sent, event_type, is_pull_request):
    assert gitea.event_type(sent) == event_type
    assert gitea.is_pull_request_event(sent) is is_pull_request


def test_headers_prefer_forgejo():
    sent = {
        "X-Gitea-Signature": "gitea",
        "X-Forgejo-Signature": "forgejo",
        "X-Gitea-Delivery": "gitea-id",
        "X-Forgejo-Delivery": "forgejo-id",
    }

    assert gitea.signature_header(sent) == "forgejo"
    assert gitea.delivery_id(sent) == "forgejo-id"


def test_headers_of_gitea_only():
    sent = {"X-Gitea-Signature": "abc", "X-Gitea-Delivery": "id-1"}

    assert gitea.signature_header(sent) == "abc"
    assert gitea.delivery_id(sent) == "id-1"


def test_starlette_headers():
    name, secret, signature = SIGNATURE_VECTORS[0]
    sent = Headers(
        raw=[
            (b"x-gitea-event", b"pull_request"),
            (b"x-gitea-event-type", b"pull_request_sync"),
            (b"x-gitea-signature", signature.encode()),
            (b"x-gitea-signature", b"0" * 64),
            (b"x-gitea-delivery", b"f4b1fbff-9f0c-49ba-aac6-f27ee2c0e905"),
        ]
    )

    assert gitea.is_pull_request_event(sent)
    assert gitea.delivery_id(sent) == "f4b1fbff-9f0c-49ba-aac6-f27ee2c0e905"
    assert gitea.signature_is_valid(
        secret, (GITEA / name).read_bytes(), gitea.signature_header(sent)
    )


def test_starlette_non_ascii_signature_rejected():
    name, secret, _ = SIGNATURE_VECTORS[0]
    sent = Headers(raw=[(b"x-gitea-signature", "é".encode() * 32)])

    assert not gitea.signature_is_valid(
        secret, (GITEA / name).read_bytes(), gitea.signature_header(sent)
    )


def test_empty_signature_header_is_missing():
    assert gitea.signature_header({"X-Gitea-Signature": ""}) is None
    assert gitea.delivery_id({}) == ""


# Every pull_request fixture: the run it starts (None: ignored), number, head SHA, fork.
PULL_REQUEST_FIXTURES = [
    ("pull_request.opened.json", "deploy", 1, SHA_1, False),
    ("pull_request.synchronized.json", "deploy", 1, SHA_1, False),
    ("pull_request.reopened.json", "deploy", 1, "36b5813240a9d2daa29b05046d56a53e18f39a3e", False),
    (
        "pull_request.opened.fork.json",
        "deploy",
        2,
        "48e773f892a831faa47c0a160d1b7f0cd369ae2a",
        True,
    ),
    ("pull_request.closed.json", "cleanup", 1, "d555a5dd07f4d0148a58d4686ec381502ae6a2d4", False),
    (
        "pull_request.closed.merged.json",
        "cleanup",
        1,
        "d555a5dd07f4d0148a58d4686ec381502ae6a2d4",
        False,
    ),
    ("pull_request.edited.json", None, 1, None, None),
    ("pull_request.label_updated.json", None, 7, None, None),
]


@pytest.mark.parametrize(("name", "action", "number", "sha", "from_fork"), PULL_REQUEST_FIXTURES)
def test_parse_fixture(name, action, number, sha, from_fork):
    event = gitea.parse_pull_request(load(name), "delivery-1")

    if action is None:
        assert isinstance(event, gitea.Ignored)
        assert repr(load(name)["action"]) in event.reason
        return
    assert isinstance(event, PullRequestEvent)
    assert event.request.action == action
    assert event.request.number == number
    assert event.request.sha == sha
    assert event.from_fork is from_fork
    assert event.association is None


def test_every_pull_request_fixture_is_listed():
    listed = {row[0] for row in PULL_REQUEST_FIXTURES}

    assert listed == {path.name for path in GITEA.glob("pull_request.*.json")}


def test_parse_forgejo_capture():
    event = gitea.parse_pull_request(
        forgejo_capture()["body"], "f4b1fbff-9f0c-49ba-aac6-f27ee2c0e905"
    )

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "deploy"
    assert event.request.number == 3501
    assert event.request.sha == "1a69eb79bbfa26ec63e95863cf15dcd77f985ede"
    assert event.request.ref == "ld_credentials"
    assert event.request.repository == "infra/ansible"
    assert event.request.author == "jpodivin"
    assert event.from_fork
    assert event.sender == "jpodivin"


def test_parse_reads_request_fields():
    event = gitea.parse_pull_request(load("pull_request.reopened.json"), "delivery-1")

    assert isinstance(event, PullRequestEvent)
    assert event.request.ref == "6543-patch-1"
    assert event.request.author == "6543"
    assert event.request.repository == "test_it/test_ci_thing"
    assert event.request.delivery == "delivery-1"
    assert event.sender == "6543"
    assert event.label is None


def test_parse_fork_reads_base_repository():
    event = gitea.parse_pull_request(load("pull_request.opened.fork.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.repository == "example/example"
    assert event.request.author == "example2"


def test_push_is_no_pull_request():
    sent = {"X-Gitea-Event": "push", "X-Gitea-Event-Type": "push"}

    assert not gitea.is_pull_request_event(sent)
    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(load("push.json"), "")
    assert caught.value.field == "action"


@pytest.mark.parametrize(
    "action", ["label_cleared", "assigned", "review_requested", "reviewed", "milestoned"]
)
def test_parse_other_action_ignored(action):
    payload = load("pull_request.opened.json")
    payload["action"] = action

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, gitea.Ignored)
    assert action in event.reason


@pytest.mark.parametrize("action", ["synchronize", "labeled"])
def test_parse_github_action_names_ignored(action):
    payload = load("pull_request.opened.json")
    payload["action"] = action

    assert isinstance(gitea.parse_pull_request(payload, ""), gitea.Ignored)


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (("pull_request",), "pull_request"),
        (("pull_request", "number"), "pull_request.number"),
        (("pull_request", "head"), "pull_request.head"),
        (("pull_request", "base"), "pull_request.base"),
        (("pull_request", "base", "repo"), "pull_request.base.repo"),
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

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == field


@pytest.mark.parametrize("action", [None, 1, ["opened"]])
def test_parse_action_of_wrong_type(action):
    payload = load("pull_request.opened.json")
    payload["action"] = action

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "action"


@pytest.mark.parametrize("number", [True, "1", 1.0, 0, 10_000_000])
def test_parse_invalid_number(number):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["number"] = number

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.number"


@pytest.mark.parametrize("sha", ["2eba238", SHA_1.upper(), SHA_1 + "\n", "$(id)", 5])
def test_parse_invalid_sha(sha):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["sha"] = sha

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.head.sha"


def test_parse_sha256_head():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["sha"] = "0123456789abcdef" * 4

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.sha == "0123456789abcdef" * 4


@pytest.mark.parametrize("ref", ["-x", "a..b", "a b", "x.lock", "ブ" * 100, 7])
def test_parse_invalid_ref(ref):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["ref"] = ref

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.head.ref"


@pytest.mark.parametrize("login", ["-x", ".x", "a b", "x" * 46, "é"])
def test_parse_invalid_login(login):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["user"]["login"] = login

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.user.login"


@pytest.mark.parametrize("repository", ["no-slash", "a/..", "-a/b", "a/b c", "a//b"])
def test_parse_invalid_repository(repository):
    payload = load("pull_request.opened.json")
    payload["pull_request"]["base"]["repo"]["full_name"] = repository

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.base.repo.full_name"


def test_parse_dotted_names():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["user"]["login"] = "jane.doe_2"
    payload["pull_request"]["base"]["repo"]["full_name"] = "my_org/.profile"

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.author == "jane.doe_2"
    assert event.request.repository == "my_org/.profile"


def test_missing_head_repository_is_fork():
    payload = load("pull_request.opened.json")
    payload["pull_request"]["head"]["repo"] = None

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork


def test_fork_compared_by_full_name_without_ids():
    payload = load("pull_request.opened.fork.json")
    del payload["pull_request"]["head"]["repo"]["id"]

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork


def test_same_repository_by_full_name_without_ids():
    payload = load("pull_request.opened.json")
    del payload["pull_request"]["base"]["repo"]["id"]

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert not event.from_fork


def test_cleanup_with_invalid_fields_still_cleans_up():
    payload = load("pull_request.closed.merged.json")
    payload["pull_request"]["head"]["sha"] = "not a sha"
    payload["pull_request"]["head"]["ref"] = "a..b"
    payload["pull_request"]["user"] = None
    del payload["pull_request"]["base"]

    event = gitea.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "cleanup"
    assert event.request.number == 1
    assert event.request.sha is None
    assert event.request.ref == ""
    assert event.request.author == ""
    assert event.request.repository == ""


def test_cleanup_needs_number():
    payload = load("pull_request.closed.json")
    del payload["pull_request"]["number"]

    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(payload, "")

    assert caught.value.field == "pull_request.number"


def test_parse_invalid_delivery():
    with pytest.raises(gitea.PayloadError) as caught:
        gitea.parse_pull_request(load("pull_request.opened.json"), "not a uuid!")

    assert caught.value.field == "X-Gitea-Delivery"
