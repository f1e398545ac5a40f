import subprocess
import sys
import typing
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader

from bridge.models import PreviewRequest, RunAction
from bridge.run_command import STALE_ACTION
from bridge.runner import PLAYBOOKS, write_request
from bridge.settings import Settings

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_stats:
        data: {ref: "{{ preview_ref }}", author: "{{ preview_author }}"}
    - ansible.builtin.copy:
        content: "{{ preview_ref }}"
        dest: "{{ out }}"
        mode: "0600"
"""


@pytest.mark.parametrize(
    "ref",
    [
        "{{lookup('pipe','touch${IFS}CANARY')}}",
        "{%if(lookup('pipe','touch${IFS}CANARY'))%}{%endif%}",
    ],
)
def test_forge_strings_are_never_templated(tmp_path, ref):
    canary = tmp_path / "canary"
    ref = ref.replace("CANARY", str(canary))
    settings = Settings(data_dir=tmp_path)
    request = PreviewRequest(action="deploy", number=1, sha="a" * 40, ref=ref)
    extra_vars = write_request(settings, request, "run-1")
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / "out"

    result = subprocess.run(
        [
            Path(sys.executable).with_name("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(playbook),
            "-e",
            f"@{extra_vars}",
            "-e",
            f"out={out}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert not canary.exists()
    assert out.read_text() == ref


def test_empty_forge_strings_stay_empty(tmp_path):
    settings = Settings(data_dir=tmp_path)
    request = PreviewRequest(action="deploy", number=3, sha="a" * 40)

    loaded = DataLoader().load_from_file(str(write_request(settings, request, "run-5")))

    assert loaded["preview_ref"] == ""
    assert loaded["preview_author"] == ""
    assert loaded["preview_repository"] == ""


def test_request_file_is_private(tmp_path):
    settings = Settings(data_dir=tmp_path)
    request = PreviewRequest(action="cleanup", number=3)

    path = write_request(settings, request, "run-2")

    assert path.stat().st_mode & 0o777 == 0o600
    assert "preview_pr: 3" in path.read_text()


def test_admission_error_is_never_templated(tmp_path):
    settings = Settings(data_dir=tmp_path)
    request = PreviewRequest(action="deploy", number=3, sha="a" * 40)

    path = write_request(settings, request, "run-3", admission_error="no room {{ x }}")

    assert "preview_admission_error: !unsafe 'no room {{ x }}'" in path.read_text()
    assert "preview_admission_error" not in write_request(settings, request, "run-4").read_text()


def test_repair_is_set_only_after_an_interrupted_run(tmp_path):
    settings = Settings(data_dir=tmp_path)
    request = PreviewRequest(action="deploy", number=3, sha="a" * 40)

    repairing = DataLoader().load_from_file(
        str(write_request(settings, request, "r6", repair=True))
    )
    plain = DataLoader().load_from_file(str(write_request(settings, request, "r7")))

    assert repairing["preview_repair"] is True
    assert "preview_repair" not in plain


def test_every_run_action_has_a_playbook():
    project = Path(__file__).parents[2]

    assert sorted(PLAYBOOKS) == sorted([*typing.get_args(RunAction), STALE_ACTION])
    for action, playbook in PLAYBOOKS.items():
        assert (project / playbook).is_file(), action
