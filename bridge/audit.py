"""Audit: resources on this host that no registry entry accounts for, and the reverse.

Every resource of a preview is named after its id, <project>-pr<N>, so the audit finds
them by name, as cleanup.yml removes them:

- unit files /etc/systemd/system/<id>-<service>.service and loaded units <id>-*.service,
  the transient build unit <id>-build included;
- the vhost /etc/nginx/previews.d/<id>.conf, the backups that an interrupted template
  task leaves beside it, and <id>.conf.broken, where preview_nginx moves a vhost that
  nginx rejects;
- the release directory <previews_root>/<id>, which holds the releases and the services'
  data and home directories;
- under <previews_state_dir>: the token tokens/<id>, the port reservation ports/<id>.json
  and the published logs logs/<id>;
- the preview's user and group, <id>;
- the pull request's ref in the project's shared object store, git/<project>.git.
No role writes a sudo rule per preview: preview_sudoers installs one per project.

A preview with a run in progress or waiting is skipped, since its resources may be on
their way in or out.
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge import interrupted, registry
from bridge.intake import Intake
from bridge.settings import Settings

DEFAULT_PULL_REF = "refs/pull/{number}/head"
UNITS_DIR = Path("/etc/systemd/system")
VHOSTS_DIR = Path("/etc/nginx/previews.d")
PREVIEW_NUMBER = r"[1-9][0-9]{0,6}"

ORPHANED = "orphaned"
RESOURCES_GONE = "resources gone"
CLEANUP_UNFINISHED = "cleanup unfinished"
REASONS = {
    ORPHANED: "resources of a preview that is not in the registry",
    RESOURCES_GONE: "in the registry, but none of its resources exist",
    CLEANUP_UNFINISHED: "its last run, a cleanup, did not succeed",
}

MSG_NOT_ROOT = {
    "audit": "audit reads every preview's token, lock and runs, so it must run as root",
    "reconcile": "reconcile reads every preview's token, lock and runs and starts cleanup "
    "runs, so it must run as root",
}


@dataclass(frozen=True)
class Layout:
    """Paths of the directories where the roles put a preview's resources on this host."""

    previews_root: Path
    state_dir: Path
    pull_ref: str = DEFAULT_PULL_REF
    units_dir: Path = UNITS_DIR
    vhosts_dir: Path = VHOSTS_DIR

    @property
    def tokens_dir(self) -> Path:
        return self.state_dir / "tokens"

    @property
    def ports_dir(self) -> Path:
        return self.state_dir / "ports"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def gone_dir(self) -> Path:
        """Markers of removed previews' host names, which nginx serves with a 410."""
        return self.state_dir / "gone"

    def git_store(self, project: str) -> Path:
        return self.state_dir / "git" / f"{project}.git"


@dataclass(frozen=True)
class Resource:
    """One thing on the host that belongs to a preview: a path, a unit, a user or a ref."""

    kind: str
    name: str


@dataclass
class Finding:
    """A preview that reconcile cleans up, and why."""

    preview_id: str
    number: int
    reason: str
    resources: list[Resource] = field(default_factory=list)
    registry_status: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["detail"] = REASONS[self.reason]
        return data


@dataclass
class Report:
    """Findings of one audit, in the order reconcile acts on them."""

    interrupted_runs: list[str]
    findings: list[Finding]
    expired_markers: list[str]
    skipped: list[str]

    def clean(self) -> bool:
        return not (self.interrupted_runs or self.findings or self.expired_markers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "interrupted_runs": self.interrupted_runs,
            "findings": [finding.as_dict() for finding in self.findings],
            "expired_markers": self.expired_markers,
            "skipped": self.skipped,
        }


class Probe:
    """Queries of the host's state outside the files the layout names."""

    def loaded_units(self, project: str) -> list[tuple[str, str, str]]:
        """Return (unit, load state, active state) of the project's loaded preview units."""
        output = _output(
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--type=service",
            f"{project}-pr*",
        )
        return [
            (fields[0], fields[1], fields[2])
            for fields in (line.split() for line in output.splitlines())
            if len(fields) >= 3
        ]

    def users(self) -> list[str]:
        return [entry.pw_name for entry in pwd.getpwall()]

    def groups(self) -> list[str]:
        return [entry.gr_name for entry in grp.getgrall()]

    def refs(self, store: Path) -> list[str]:
        if not (store / "HEAD").exists():
            return []
        return _output("git", f"--git-dir={store}", "for-each-ref", "--format=%(refname)").split()

    def live_run_units(self) -> set[str]:
        return interrupted.active_run_units()

    def locked(self, lock_file: Path) -> bool:
        """Return whether a run holds this preview lock (see run_command.preview_lock)."""
        try:
            fd = os.open(lock_file, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(MSG_NOT_ROOT[command])


def read_layout(settings: Settings) -> Layout:
    """Read the host paths from the inventory that runs use (PREVIEWS_INVENTORY).

    The inventory must name one preview host, since the audit looks at this machine only.
    """
    variables = _host_variables(settings)
    root = _literal_path(variables, "previews_root")
    state_dir = _literal_path(variables, "previews_state_dir")
    pull_ref = str(variables.get("previews_pull_ref", DEFAULT_PULL_REF))
    if "{number}" not in pull_ref or "{{" in pull_ref:
        raise RuntimeError(
            f"previews_pull_ref {pull_ref!r} in {settings.inventory} must be a literal ref "
            "containing {number}"
        )
    return Layout(root, state_dir, pull_ref)


def audit(settings: Settings, layout: Layout, probe: Probe, now: float | None = None) -> Report:
    """Compare the resources on this host with the registry; change nothing."""
    artifacts = settings.runner_dir / "artifacts"
    live_units = probe.live_run_units()
    dead = [
        folder.name
        for folder in interrupted.unfinished_runs(artifacts)
        if interrupted.is_dead(folder, live_units)
    ]

    preview = preview_pattern(settings.project)
    resources = find_resources(layout, settings.project, probe)
    entries = {
        key: value
        for key, value in registry.current(settings.runner_dir).items()
        if preview.fullmatch(key)
    }
    busy = _busy(settings, probe, live_units, set(resources) | set(entries))
    findings = _classify(settings, resources, entries, busy)
    expired = expired_markers(layout.gone_dir, settings.gone_marker_days, now)
    return Report(dead, findings, expired, sorted(busy, key=_number))


def preview_pattern(project: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(project)}-pr{PREVIEW_NUMBER}")


def find_resources(layout: Layout, project: str, probe: Probe) -> dict[str, list[Resource]]:
    """Return every resource on the host named after one of the project's previews, by id."""
    preview = rf"(?P<id>{re.escape(project)}-pr{PREVIEW_NUMBER})"
    found: dict[str, list[Resource]] = {}
    sources = [
        _entries(layout.units_dir, rf"{preview}-[a-z][a-z0-9-]*\.service", "unit file"),
        _loaded_units(probe.loaded_units(project), preview),
        _entries(layout.vhosts_dir, rf"{preview}\.conf", "vhost"),
        _entries(layout.vhosts_dir, rf"{preview}\.conf\..+~", "vhost backup"),
        _entries(layout.vhosts_dir, rf"{preview}\.conf\.broken", "quarantined vhost"),
        _entries(layout.previews_root, preview, "release directory"),
        _entries(layout.tokens_dir, preview, "token"),
        _entries(layout.ports_dir, rf"{preview}\.json", "port reservation"),
        _entries(layout.logs_dir, preview, "published logs"),
        _names(probe.users(), preview, "user"),
        _names(probe.groups(), preview, "group"),
        _refs(probe.refs(layout.git_store(project)), layout.pull_ref, project),
    ]
    for source in sources:
        for preview_id, resource in source:
            found.setdefault(preview_id, []).append(resource)
    return found


def expired_markers(gone_dir: Path, days: int, now: float | None = None) -> list[str]:
    """Return the names of the gone markers older than days, oldest first."""
    limit = (time.time() if now is None else now) - days * 86400
    try:
        markers = [(path.stat().st_mtime, path.name) for path in gone_dir.iterdir()]
    except FileNotFoundError:
        return []
    return [name for mtime, name in sorted(markers) if mtime < limit]


def print_audit(settings: Settings, as_json: bool) -> int:
    """Print the audit; return 0 when there is nothing to reconcile, 1 otherwise."""
    require_root("audit")
    report = audit(settings, read_layout(settings), Probe())
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.clean() else 1


def print_report(report: Report) -> None:
    for ident in report.interrupted_runs:
        print(f"interrupted run {ident}: it has no status and its process is gone")
    for finding in report.findings:
        status = f" ({finding.registry_status})" if finding.registry_status else ""
        print(f"{finding.preview_id}{status}: {REASONS[finding.reason]}")
        for resource in finding.resources:
            print(f"    {resource.kind}: {resource.name}")
    if report.expired_markers:
        print(
            f"{len(report.expired_markers)} gone markers are older than the retention; "
            "reconcile removes them"
        )
    for preview_id in report.skipped:
        print(f"{preview_id}: skipped, a run of it is in progress or waiting")
    if report.clean():
        print("nothing to reconcile: the registry accounts for every preview resource")


def _classify(
    settings: Settings,
    resources: dict[str, list[Resource]],
    entries: dict[str, registry.Preview],
    busy: set[str],
) -> list[Finding]:
    last_runs = _last_runs(settings.runner_dir)
    findings = []
    for preview_id in sorted(set(resources) | set(entries), key=_number):
        if preview_id in busy:
            continue
        entry = entries.get(preview_id)
        found = resources.get(preview_id, [])
        last = last_runs.get(preview_id)
        if entry is None:
            reason = ORPHANED
        elif not found:
            reason = RESOURCES_GONE
        elif last is not None and last.action == "cleanup" and last.status != "successful":
            reason = CLEANUP_UNFINISHED
        else:
            continue
        status = entry.status if entry else ""
        findings.append(Finding(preview_id, _number(preview_id), reason, found, status))
    return findings


def _last_runs(runner_dir: Path) -> dict[str, registry.Run]:
    """Return the last finished run of each preview, by id.

    A stale cleanup names no single preview, so it counts for none: one that skipped a
    preview which was in use must not make that preview look like an unfinished cleanup.
    """
    last: dict[str, registry.Run] = {}
    for run in registry.read_runs(runner_dir):
        if run.status in registry.FINAL_STATUSES:
            last[run.preview_id] = run
    return last


def _busy(
    settings: Settings, probe: Probe, live_units: set[str], preview_ids: set[str]
) -> set[str]:
    """Return the previews with a run in progress, or a request the bridge will run."""
    busy = {interrupted.preview_of(ident) for ident in live_units}
    intake = Intake(settings.state_dir)
    waiting = intake.pending() + intake.started()
    busy |= {settings.preview_id(accepted.request.number) for accepted in waiting}
    locks = settings.locks_dir
    busy |= {key for key in preview_ids if probe.locked(locks / f"{key}.lock")}
    return {key for key in busy if key is not None}


def _entries(directory: Path, pattern: str, kind: str) -> Iterator[tuple[str, Resource]]:
    regex = re.compile(pattern)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for name in names:
        match = regex.fullmatch(name)
        if match:
            yield match["id"], Resource(kind, str(directory / name))


def _names(names: Iterable[str], pattern: str, kind: str) -> Iterator[tuple[str, Resource]]:
    regex = re.compile(pattern)
    for name in sorted(names):
        if regex.fullmatch(name):
            yield name, Resource(kind, name)


def _loaded_units(
    units: Iterable[tuple[str, str, str]], preview: str
) -> Iterator[tuple[str, Resource]]:
    """Yield the units that run or that systemd still has loaded.

    A unit whose file is gone and that is inactive is only a name systemd still remembers.
    """
    regex = re.compile(rf"{preview}-[a-z][a-z0-9-]*\.service")
    for unit, load, active in units:
        match = regex.fullmatch(unit)
        if match and (load != "not-found" or active != "inactive"):
            yield match["id"], Resource("unit", f"{unit} ({load}, {active})")


def _refs(refs: Iterable[str], pull_ref: str, project: str) -> Iterator[tuple[str, Resource]]:
    head, _, tail = pull_ref.partition("{number}")
    regex = re.compile(rf"{re.escape(head)}(?P<number>{PREVIEW_NUMBER}){re.escape(tail)}")
    for ref in refs:
        match = regex.fullmatch(ref)
        if match:
            yield f"{project}-pr{match['number']}", Resource("git ref", ref)


def _number(preview_id: str) -> int:
    return int(preview_id.rsplit("-pr", 1)[1])


def _host_variables(settings: Settings) -> dict[str, Any]:
    binary = settings.executable.parent / "ansible-inventory"
    argv = [str(binary), "-i", str(settings.inventory), "--list"]
    environment = {**os.environ, "ANSIBLE_CONFIG": str(settings.project_dir / "ansible.cfg")}
    result = subprocess.run(
        argv,
        cwd=settings.project_dir,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ansible-inventory failed on {settings.inventory}: {result.stderr}")
    inventory = json.loads(result.stdout)
    hosts = sorted(_group_hosts(inventory, "previews"))
    if len(hosts) != 1:
        raise RuntimeError(
            f"the group 'previews' of {settings.inventory} has {len(hosts)} hosts "
            f"({', '.join(hosts) or 'none'}); the audit looks at this machine only, so "
            "point PREVIEWS_INVENTORY at an inventory of this host alone"
        )
    return dict(inventory.get("_meta", {}).get("hostvars", {}).get(hosts[0], {}))


def _group_hosts(inventory: dict[str, Any], group: str) -> set[str]:
    entry = inventory.get(group, {})
    hosts = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts |= _group_hosts(inventory, child)
    return hosts


def _literal_path(variables: dict[str, Any], name: str) -> Path:
    value = variables.get(name)
    if not isinstance(value, str) or not value.startswith("/") or "{{" in value:
        raise RuntimeError(
            f"the inventory sets {name} to {value!r}; the audit needs an absolute path "
            "without templates"
        )
    return Path(value)


def _output(*argv: str) -> str:
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout
