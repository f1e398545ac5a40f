import pytest
from fastapi.testclient import TestClient

from bridge.app import create_app
from bridge.queue import RunQueue
from bridge.settings import Settings
from tests.unit.fakes import Launcher
from tests.unit.webhooks import API_TOKEN, SECRET


@pytest.fixture
def settings(tmp_path):
    return Settings(
        webhook_secret=SECRET, api_token=API_TOKEN, data_dir=tmp_path, max_body_bytes=64 * 1024
    )


@pytest.fixture
def launcher():
    return Launcher()


@pytest.fixture
def queue(settings, launcher):
    return RunQueue(settings, launcher=launcher)


@pytest.fixture
def client(settings, queue):
    with TestClient(create_app(settings, queue=queue)) as test_client:
        yield test_client
