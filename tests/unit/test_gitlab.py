import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from bridge import gitlab
from bridge.forge import PullRequestEvent

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gitlab"
TOKEN = "s3cret-token"
SHA_3E = "3e4db3586b65dd401de8c77b3ac343fd24cbf89b"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_token_valid():
    assert gitlab.token_is_valid(TOKEN.encode(), TOKEN)


@pytest.mark.parametrize(
    "header",
    [None, "", "s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", "é" * 12, "\ud800", "ブ"],
    ids=[
        "missing",
        "empty",
        "prefix",
        "longer",
        "other-case",
        "latin-1",
        "lone-surrogate",
        "non-latin-1",
    ],
)
def test_token_rejected(header):
    assert not gitlab.token_is_valid(TOKEN.encode(), header)


def test_empty_secret_matches_nothing():
    assert not gitlab.token_is_valid(b"", "")
    assert not gitlab.token_is_valid(b"", "anything")


def test_non_ascii_token_through_starlette():
    """Starlette decodes the UTF-8 bytes GitLab sends as Latin-1, so "é" arrives as "Ã©"."""
    secret = "sécret".encode()
    sent = Headers(raw=[(b"x-gitlab-token", secret)])

    assert sent["X-Gitlab-Token"] == "sÃ©cret"
    assert gitlab.token_is_valid(secret, sent["X-Gitlab-Token"])
    assert not gitlab.token_is_valid(secret, "sécret")


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({"X-Gitlab-Event": "Merge Request Hook"}, True),
        ({"x-gitlab-event": "Merge Request Hook"}, True),
        ({"X-Gitlab-Event": "merge request hook"}, False),
        ({"X-Gitlab-Event": "Push Hook"}, False),
        ({"X-Gitlab-Event": "System Hook"}, False),
        ({"X-Gitlab-Event": "Note Hook"}, False),
        ({"X-GitHub-Event": "pull_request"}, False),
        ({}, False),
    ],
)
def test_is_merge_request_event(sent, expected):
    assert gitlab.is_merge_request_event(sent) is expected


def test_delivery_id_prefers_idempotency_key():
    sent = {
        "Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
        "X-Gitlab-Webhook-UUID": "0b9f3c4e-6b8a-4c2e-9d1f-2a3b4c5d6e7f",
        "X-Gitlab-Event-UUID": "11111111-2222-3333-4444-555555555555",
    }

    assert gitlab.delivery_id(sent) == "908a6d9e-45fd-46c8-97e6-c4f350f219dd"


def test_delivery_id_falls_back_to_webhook_uuid():
    sent = {"x-gitlab-webhook-uuid": "0b9f3c4e-6b8a-4c2e-9d1f-2a3b4c5d6e7f"}

    assert gitlab.delivery_id(sent) == "0b9f3c4e-6b8a-4c2e-9d1f-2a3b4c5d6e7f"
    assert gitlab.delivery_id({}) == ""


# Every merge request fixture: the run it starts (None: ignored), iid, last commit, fork.
MERGE_REQUEST_FIXTURES = [
    ("merge_request.open.json", "deploy", 3, "2f7670508b771e7e77839402be8b34b13787aba8", False),
    (
        "merge_request.open.docs.json",
        "deploy",
        1,
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        False,
    ),
    ("merge_request.reopen.json", "deploy", 1, "36b5813240a9d2daa29b05046d56a53e18f39a3e", False),
    (
        "merge_request.update.new-commits.json",
        "deploy",
        3,
        "5ff66a1f7404deee915b50998c340e96d995f048",
        False,
    ),
    ("merge_request.close.json", "cleanup", 4, SHA_3E, False),
    ("merge_request.merge.json", "cleanup", 4, SHA_3E, False),
    (
        "merge_request.close.fork.json",
        "cleanup",
        19,
        "769beb0807cf0bafeb3357e787f8c2f8fd3ea42b",
        True,
    ),
    ("merge_request.update.title.json", None, 3, None, None),
    ("merge_request.update.labels.json", None, 3, None, None),
    ("merge_request.update.target-branch.json", None, 3, None, None),
]


@pytest.mark.parametrize(("name", "action", "number", "sha", "from_fork"), MERGE_REQUEST_FIXTURES)
def test_parse_fixture(name, action, number, sha, from_fork):
    event = gitlab.parse_pull_request(load(name), "delivery-1")

    if action is None:
        assert isinstance(event, gitlab.Ignored)
        assert "without new commits" in event.reason
        return
    assert isinstance(event, PullRequestEvent)
    assert event.request.action == action
    assert event.request.number == number
    assert event.request.sha == sha
    assert event.from_fork is from_fork
    assert event.association is None


def test_every_merge_request_fixture_is_listed():
    listed = {row[0] for row in MERGE_REQUEST_FIXTURES}

    assert listed == {path.name for path in FIXTURES.glob("merge_request.*.json")}


def test_parse_reads_request_fields():
    event = gitlab.parse_pull_request(load("merge_request.update.new-commits.json"), "delivery-1")

    assert isinstance(event, PullRequestEvent)
    assert event.request.ref == "get-event-payload"
    assert event.request.author == "quan.hoang"
    assert event.request.repository == "quan.hoang/atlantis-example"
    assert event.request.delivery == "delivery-1"
    assert event.sender == "quan.hoang"
    assert event.label is None


def test_author_is_who_triggered_the_event():
    """GitLab's user is who reopened the merge request here, not its author (author_id)."""
    payload = load("merge_request.reopen.json")

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert payload["user"]["id"] != payload["object_attributes"]["author_id"]
    assert event.request.author == "real6543"


def test_fork_cleanup_reads_target_project():
    event = gitlab.parse_pull_request(load("merge_request.close.fork.json"), "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.repository == "packit-service/hello-world"
    assert event.request.ref == "innocent-change"


def test_fork_open_reports_fork():
    payload = load("merge_request.open.json")
    payload["object_attributes"]["source_project_id"] = 1

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "deploy"
    assert event.from_fork


@pytest.mark.parametrize("source", [None, "72081820", True])
def test_missing_source_project_is_fork(source):
    payload = load("merge_request.open.json")
    payload["object_attributes"]["source_project_id"] = source

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.from_fork


def test_push_is_no_merge_request():
    assert not gitlab.is_merge_request_event({"X-Gitlab-Event": "Push Hook"})
    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(load("push.json"), "")
    assert caught.value.field == "object_kind"


@pytest.mark.parametrize("oldrev", [None, ""])
def test_update_without_oldrev_value_ignored(oldrev):
    payload = load("merge_request.update.title.json")
    payload["object_attributes"]["oldrev"] = oldrev

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, gitlab.Ignored)


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval"])
def test_parse_other_action_ignored(action):
    payload = load("merge_request.open.json")
    payload["object_attributes"]["action"] = action

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, gitlab.Ignored)
    assert repr(action) in event.reason


def test_ignored_action_needs_no_other_field():
    payload = {"object_kind": "merge_request", "object_attributes": {"action": "approved"}}

    assert isinstance(gitlab.parse_pull_request(payload, ""), gitlab.Ignored)


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (("object_attributes",), "object_attributes"),
        (("object_attributes", "action"), "object_attributes.action"),
        (("object_attributes", "iid"), "object_attributes.iid"),
        (("object_attributes", "last_commit"), "object_attributes.last_commit"),
        (("object_attributes", "last_commit", "id"), "object_attributes.last_commit.id"),
        (("object_attributes", "source_branch"), "object_attributes.source_branch"),
        (("user",), "user"),
        (("user", "username"), "user.username"),
        (("project",), "project"),
        (("project", "path_with_namespace"), "project.path_with_namespace"),
    ],
)
def test_parse_missing_field(remove, field):
    payload = load("merge_request.open.json")
    parent = payload
    for key in remove[:-1]:
        parent = parent[key]
    del parent[remove[-1]]

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == field


@pytest.mark.parametrize("kind", [None, "push", "note", ["merge_request"]])
def test_parse_wrong_object_kind(kind):
    payload = load("merge_request.open.json")
    payload["object_kind"] = kind

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "object_kind"


@pytest.mark.parametrize("iid", [True, "3", 3.0, 0, -1, 10_000_000])
def test_parse_invalid_iid(iid):
    payload = load("merge_request.open.json")
    payload["object_attributes"]["iid"] = iid

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "object_attributes.iid"


@pytest.mark.parametrize(
    "sha", ["2f76705", "2F7670508B771E7E77839402BE8B34B13787ABA8", "$(id)", None]
)
def test_parse_invalid_sha(sha):
    payload = load("merge_request.open.json")
    payload["object_attributes"]["last_commit"]["id"] = sha

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "object_attributes.last_commit.id"


@pytest.mark.parametrize("ref", ["-x", "a..b", "a b", "refs/heads/", "ブ" * 100, 3])
def test_parse_invalid_ref(ref):
    payload = load("merge_request.open.json")
    payload["object_attributes"]["source_branch"] = ref

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "object_attributes.source_branch"


@pytest.mark.parametrize("username", ["-x", ".x", "a b", "a/b", "x" * 46, "é"])
def test_parse_invalid_username(username):
    payload = load("merge_request.open.json")
    payload["user"]["username"] = username

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "user.username"


@pytest.mark.parametrize(
    "path", ["project", "a/../b", "-group/project", "group//project", "g/" + "p" * 139]
)
def test_parse_invalid_path(path):
    payload = load("merge_request.open.json")
    payload["project"]["path_with_namespace"] = path

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "project.path_with_namespace"


@pytest.mark.parametrize(
    "path", ["group/subgroup/project", "a/b/c/d/e", "_group/.dotted-project", "my.group/my_project"]
)
def test_parse_nested_group_path(path):
    payload = load("merge_request.open.json")
    payload["project"]["path_with_namespace"] = path

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.repository == path


def test_cleanup_with_invalid_fields_still_cleans_up():
    payload = load("merge_request.merge.json")
    payload["object_attributes"]["last_commit"] = None
    payload["object_attributes"]["source_branch"] = "a..b"
    payload["user"]["username"] = "not a username"
    del payload["project"]

    event = gitlab.parse_pull_request(payload, "")

    assert isinstance(event, PullRequestEvent)
    assert event.request.action == "cleanup"
    assert event.request.number == 4
    assert event.request.sha is None
    assert event.request.ref == ""
    assert event.request.author == ""
    assert event.request.repository == ""


def test_cleanup_needs_iid():
    payload = load("merge_request.close.json")
    del payload["object_attributes"]["iid"]

    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(payload, "")

    assert caught.value.field == "object_attributes.iid"


def test_parse_invalid_delivery():
    with pytest.raises(gitlab.PayloadError) as caught:
        gitlab.parse_pull_request(load("merge_request.open.json"), "key with spaces")

    assert caught.value.field == "Idempotency-Key"
