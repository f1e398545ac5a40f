"""ansible-runner runs a playbook with the project's ansible.cfg and callbacks."""

import os
import sys
from pathlib import Path

import ansible_runner

from bridge.runner import runner_environment
from bridge.settings import Settings

PLAYBOOK = """
- name: Say hello
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print a message
      ansible.builtin.debug:
        msg: hello from the runner
"""


def test_runner_runs_with_project_callbacks(tmp_path, monkeypatch):
    # The run command's unit puts the virtualenv's bin first on PATH; so does this test.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    settings = Settings(data_dir=tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.yml").write_text(PLAYBOOK)
    (tmp_path / "runner").mkdir()

    result = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        project_dir=str(project),
        playbook="hello.yml",
        inventory="localhost ansible_connection=local",
        ident="hello",
        envvars=runner_environment(settings),
        quiet=True,
    )

    output = (tmp_path / "runner" / "artifacts" / "hello" / "stdout").read_text()
    assert result.status == "successful", output
    assert "hello from the runner" in output
    assert "Skipping callback" not in output
