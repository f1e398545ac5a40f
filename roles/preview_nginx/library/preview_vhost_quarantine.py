#!/usr/bin/python
"""Ansible module: move aside the preview vhosts that nginx rejects."""

from __future__ import annotations

DOCUMENTATION = r"""
module: preview_vhost_quarantine
short_description: Keep one broken preview vhost from failing every other deploy
description:
  - Runs C(nginx -t). nginx stops at the first error and names its file as file:line, or
    names the file that it could not open. While that file is a C(*.conf) directly inside
    I(directory), the module renames it to <name><suffix>, which the include glob no longer
    matches, warns, and tests again.
  - Fails when nginx's error names a file outside I(directory), such as the base
    configuration, or names no file. The files already moved stay moved.
  - Never reloads nginx. In check mode it only reports the first file it would move.
options:
  directory:
    description: Directory of the preview vhosts, included as <directory>/*.conf.
    type: path
    required: true
  suffix:
    description: Suffix appended to the name of a rejected vhost.
    type: str
    default: .broken
"""

RETURN = r"""
quarantined:
  description: The vhosts moved aside, each with path, moved_to and error (nginx's message).
  returned: always
  type: list
  elements: dict
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

# "nginx: [emerg] unknown directive "x" in /etc/nginx/previews.d/demo-pr1.conf:3"
ERROR_LOCATION = re.compile(r" in (?P<path>/\S+):[0-9]+$")
# When nginx cannot open an included file, as in 'open() "/etc/nginx/previews.d/a.conf"
# failed (2: ...) in /etc/nginx/conf.d/previews.conf:85', file:line is the file that
# includes it, so the file in open() "..." is the one to blame.
UNREADABLE_FILE = re.compile(r'open\(\) "(?P<path>[^"]+)" failed')
VHOST_SUFFIX = ".conf"


def blamed_file(output):
    """Return the file that nginx -t's output blames for its first error, or None."""
    for line in output.splitlines():
        line = line.strip()
        unreadable = UNREADABLE_FILE.search(line)
        if unreadable:
            return unreadable["path"]
        located = ERROR_LOCATION.search(line)
        if located:
            return located["path"]
    return None


def first_error(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def is_vhost(directory, path):
    """Tell whether path is a file that <directory>/*.conf includes."""
    path = os.path.normpath(path)
    return os.path.dirname(path) == os.path.normpath(directory) and path.endswith(VHOST_SUFFIX)


def count_vhosts(directory):
    try:
        return sum(1 for name in os.listdir(directory) if name.endswith(VHOST_SUFFIX))
    except FileNotFoundError:
        return 0


def quarantine(directory, suffix, test, max_moves):
    """Move aside each vhost that test() blames, up to max_moves of them.

    test() runs nginx -t and returns (passed, output). Returns the vhosts moved and the
    output of the last test when it still fails, or None when it passes.
    """
    moved = []
    for _ in range(max_moves + 1):
        passed, output = test()
        if passed:
            return moved, None
        path = blamed_file(output)
        if path is None or not is_vhost(directory, path) or len(moved) == max_moves:
            return moved, output
        target = path + suffix
        try:
            os.replace(path, target)
        except FileNotFoundError:
            # Another run moved it first; test again.
            continue
        moved.append({"path": path, "moved_to": target, "error": first_error(output)})
    return moved, output


def failure_message(directory, output):
    path = blamed_file(output)
    if path is not None and is_vhost(directory, path):
        return (
            f"nginx -t still fails on {path} after every vhost it blamed was moved aside; "
            f"fix or remove that file, then run again. nginx said: {output.strip()}"
        )
    where = f"on {path}, which is outside {directory}" if path else "without naming a file"
    return (
        f"nginx -t fails {where}, so no preview vhost was moved for this error. Fix the "
        f"nginx configuration until nginx -t passes, then run again. "
        f"nginx said: {output.strip()}"
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "suffix": {"type": "str", "default": ".broken"},
        },
        supports_check_mode=True,
    )
    directory = module.params["directory"]
    suffix = module.params["suffix"]
    if not suffix or "/" in suffix or suffix.endswith(VHOST_SUFFIX):
        module.fail_json(msg=f"invalid suffix {suffix!r}: it must not contain '/' or end in .conf")
    nginx = module.get_bin_path("nginx", required=True)

    def test():
        rc, stdout, stderr = module.run_command([nginx, "-t", "-q"])
        return rc == 0, stderr + stdout

    if module.check_mode:
        passed, output = test()
        path = None if passed else blamed_file(output)
        if passed or path is None or not is_vhost(directory, path):
            if not passed:
                module.fail_json(msg=failure_message(directory, output), quarantined=[])
            module.exit_json(changed=False, quarantined=[])
        would_move = {"path": path, "moved_to": path + suffix, "error": first_error(output)}
        module.exit_json(changed=True, quarantined=[would_move])

    moved, output = quarantine(directory, suffix, test, count_vhosts(directory))
    for entry in moved:
        module.warn(
            f"nginx rejected {entry['path']} ({entry['error']}); it was moved to "
            f"{entry['moved_to']} so that other previews keep deploying. Its preview has no "
            "route after the next nginx reload, until it is deployed again."
        )
    if output is not None:
        module.fail_json(msg=failure_message(directory, output), quarantined=moved)
    module.exit_json(changed=bool(moved), quarantined=moved)


if __name__ == "__main__":
    main()
