"""The operator API: authentication, previews, runs and logs, read from real artifacts."""

import pytest
from fastapi.testclient import TestClient

from bridge import pins
from bridge.app import create_app
from tests.unit.fakes import write_run
from tests.unit.webhooks import API_TOKEN, fixture, post, runs

IDENT = "20260101T000000000000Z_demo-pr7_deploy_abcdef"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def deployed(settings):
    facts = {
        "id": "demo-pr7",
        "number": 7,
        "action": "deploy",
        "sha": "7" * 40,
        "ref": "feature",
        "author": "octocat",
        "time": "2026-01-01T00:00:00.000000Z",
        "urls": {"web": "https://pr-7.previews.test/"},
    }
    write_run(settings.runner_dir, IDENT, "successful", facts)
    (settings.runner_dir / "artifacts" / IDENT / "stdout").write_text("PLAY [Deploy a preview]\n")
    return facts


@pytest.mark.parametrize(
    "path",
    ["/api/previews", "/api/previews/7", "/api/previews/7/runs", f"/api/runs/{IDENT}/log"],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"}],
    ids=["none", "wrong", "basic"],
)
def test_api_needs_the_token(client, deployed, path, headers):
    response = client.get(path, headers=headers)

    assert response.status_code == 401
    assert "feature" not in response.text


def test_api_is_off_without_a_token(settings, queue):
    with TestClient(create_app(settings.model_copy(update={"api_token": None}), queue=queue)) as c:
        response = c.get("/api/previews", headers=AUTH)

    assert response.status_code == 403
    assert "PREVIEWS_API_TOKEN" in response.json()["detail"]


def test_list_and_show(client, deployed):
    [listed] = client.get("/api/previews", headers=AUTH).json()
    shown = client.get("/api/previews/7", headers=AUTH).json()

    assert listed == shown
    assert shown["status"] == "active"
    assert shown["sha"] == "7" * 40
    assert shown["urls"] == {"web": "https://pr-7.previews.test/"}


def test_pins_and_failure_reasons_show(client, settings, deployed):
    pins.pin(settings.pins_dir, "demo-pr7")
    failed = {**deployed, "time": "2026-01-02T00:00:00.000000Z", "reason": "no capacity"}
    write_run(
        settings.runner_dir, "20260102T000000000000Z_demo-pr7_deploy_abcdef", "failed", failed
    )

    shown = client.get("/api/previews/7", headers=AUTH).json()

    assert shown["pinned"] is True
    assert (shown["status"], shown["reason"]) == ("failed", "no capacity")


def test_log_of_a_stale_cleanup(client, settings):
    ident = "20260101T000000000000Z_demo_cleanup-stale_abcdef"
    (settings.runner_dir / "artifacts" / ident).mkdir(parents=True)
    (settings.runner_dir / "artifacts" / ident / "stdout").write_text("PLAY [Clean up]\n")

    response = client.get(f"/api/runs/{ident}/log", headers=AUTH)

    assert response.status_code == 200
    assert response.text == "PLAY [Clean up]\n"


def test_unknown_preview_is_404(client, deployed):
    assert client.get("/api/previews/8", headers=AUTH).status_code == 404


@pytest.mark.parametrize("number", ["0", "-1", "10000000", "x", "1e3"])
def test_invalid_number_is_422(client, number):
    response = client.get(f"/api/previews/{number}", headers=AUTH)

    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "path.number"


def test_runs_of_a_preview(client, deployed):
    [run] = client.get("/api/previews/7/runs", headers=AUTH).json()

    assert run["ident"] == IDENT
    assert run["status"] == "successful"
    assert client.get("/api/previews/8/runs", headers=AUTH).json() == []


def test_run_log(client, deployed):
    response = client.get(f"/api/runs/{IDENT}/log", headers=AUTH)

    assert response.status_code == 200
    assert response.text == "PLAY [Deploy a preview]\n"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "ident",
    ["..%2F..%2Fetc", "20260101T000000000000Z_demo-pr7_deploy_abcdeg", "x" * 300],
)
def test_run_log_rejects_other_idents(client, deployed, ident):
    response = client.get(f"/api/runs/{ident}/log", headers=AUTH)

    assert response.status_code in (404, 422)


def test_missing_log_is_404(client):
    response = client.get(
        "/api/runs/20260101T000000000000Z_demo-pr9_deploy_abcdef/log", headers=AUTH
    )

    assert response.status_code == 404


def test_queued_request_shows(client, queue, launcher):
    launcher.hold.add(2)
    post(client, fixture("pull_request.opened.json"))

    [preview] = client.get("/api/previews", headers=AUTH).json()

    assert preview["number"] == 2
    assert preview["queued"].startswith("deploy ")
    launcher.release()
    runs(queue, launcher)


def test_openapi_schema_documents_the_api(client):
    schema = client.get("/api/openapi.json").json()

    assert set(schema["paths"]) == {
        "/api/previews",
        "/api/previews/{number}",
        "/api/previews/{number}/runs",
        "/api/runs/{ident}/log",
    }
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
