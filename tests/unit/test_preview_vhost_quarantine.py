import importlib.util
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[2] / "roles/preview_nginx/library/preview_vhost_quarantine.py"
spec = importlib.util.spec_from_file_location("preview_vhost_quarantine", MODULE)
quarantine_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quarantine_module)
blamed_file = quarantine_module.blamed_file
is_vhost = quarantine_module.is_vhost
quarantine = quarantine_module.quarantine
failure_message = quarantine_module.failure_message

FAILED = "nginx: configuration file /etc/nginx/nginx.conf test failed\n"


def emerg(message: str) -> str:
    """Return nginx -t output for one error, as nginx 1.22 prints it."""
    return f"2026/01/01 00:00:00 [emerg] 11#11: {message}\n{FAILED}"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            emerg('unknown directive "garbage" in /etc/nginx/previews.d/demo-pr5.conf:207'),
            "/etc/nginx/previews.d/demo-pr5.conf",
        ),
        (
            emerg('unexpected end of file, expecting "}" in /etc/nginx/previews.d/demo-pr9.conf:2'),
            "/etc/nginx/previews.d/demo-pr9.conf",
        ),
        (
            emerg(
                'open() "/etc/nginx/previews.d/demo-pr8.conf" failed (2: No such file or '
                "directory) in /etc/nginx/conf.d/previews.conf:85"
            ),
            "/etc/nginx/previews.d/demo-pr8.conf",
        ),
        (
            emerg('unknown directive "garbage" in /etc/nginx/conf.d/zz.conf:1'),
            "/etc/nginx/conf.d/zz.conf",
        ),
        (emerg('unknown "nosuchvar" variable'), None),
        ("", None),
    ],
)
def test_blamed_file(output, expected):
    assert blamed_file(output) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/nginx/previews.d/demo-pr5.conf", True),
        ("/etc/nginx/previews.d/../conf.d/previews.conf", False),
        ("/etc/nginx/previews.d/sub/demo-pr5.conf", False),
        ("/etc/nginx/previews.d/demo-pr5.conf.broken", False),
        ("/etc/nginx/nginx.conf", False),
    ],
)
def test_is_vhost(path, expected):
    assert is_vhost("/etc/nginx/previews.d", path) is expected


class FakeNginx:
    """nginx -t over a directory: rejects the first file that contains "garbage"."""

    def __init__(self, directory: Path, base_error: bool = False) -> None:
        self.directory = directory
        self.base_error = base_error
        self.tests = 0

    def __call__(self) -> tuple[bool, str]:
        self.tests += 1
        for path in sorted(self.directory.glob("*.conf")):
            if "garbage" in path.read_text():
                return False, emerg(f'unknown directive "garbage" in {path}:1')
        if self.base_error:
            return False, emerg('unknown directive "garbage" in /etc/nginx/conf.d/zz.conf:1')
        return True, ""


def vhosts(directory: Path, **contents: str) -> None:
    for name, text in contents.items():
        (directory / f"{name}.conf").write_text(text)


def test_quarantine_moves_each_broken_vhost(tmp_path):
    vhosts(tmp_path, a="server {}", b="garbage", c="server {}", d="garbage too")
    nginx = FakeNginx(tmp_path)

    moved, output = quarantine(str(tmp_path), ".broken", nginx, 4)

    assert output is None
    assert [Path(entry["path"]).name for entry in moved] == ["b.conf", "d.conf"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "a.conf",
        "b.conf.broken",
        "c.conf",
        "d.conf.broken",
    ]
    assert "unknown directive" in moved[0]["error"]
    assert nginx.tests == 3


def test_quarantine_nothing_broken(tmp_path):
    vhosts(tmp_path, a="server {}")

    moved, output = quarantine(str(tmp_path), ".broken", FakeNginx(tmp_path), 1)

    assert moved == []
    assert output is None


def test_quarantine_never_moves_base_config(tmp_path):
    vhosts(tmp_path, a="server {}")

    moved, output = quarantine(str(tmp_path), ".broken", FakeNginx(tmp_path, base_error=True), 1)

    assert moved == []
    assert "/etc/nginx/conf.d/zz.conf" in output
    assert (tmp_path / "a.conf").exists()


def test_quarantine_stops_after_max_moves(tmp_path):
    vhosts(tmp_path, a="garbage", b="garbage")

    moved, output = quarantine(str(tmp_path), ".broken", FakeNginx(tmp_path), 1)

    assert len(moved) == 1
    assert "b.conf" in output
    assert (tmp_path / "b.conf").exists()


def test_quarantine_file_moved_by_another_run(tmp_path):
    blamed = tmp_path / "gone.conf"
    results = iter([(False, emerg(f'unknown directive "x" in {blamed}:1')), (True, "")])

    moved, output = quarantine(str(tmp_path), ".broken", lambda: next(results), 1)

    assert moved == []
    assert output is None


def test_failure_message_names_base_file():
    output = emerg('unknown directive "garbage" in /etc/nginx/conf.d/zz.conf:1')

    message = failure_message("/etc/nginx/previews.d", output)

    assert "on /etc/nginx/conf.d/zz.conf, which is outside /etc/nginx/previews.d" in message
    assert "no preview vhost was moved" in message
    assert output.strip() in message


def test_failure_message_without_file():
    message = failure_message("/etc/nginx/previews.d", emerg('unknown "x" variable'))

    assert "without naming a file" in message
