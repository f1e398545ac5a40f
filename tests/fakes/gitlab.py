"""A fake GitLab API (/api/v4): commit statuses and merge-request notes.

Checks the PRIVATE-TOKEN header, that a project path arrives URL-encoded whole
(group%2Fname) or as a numeric id, the merge request and commit, field types and
states. Like GitLab, it refuses to set a running or pending status to the state it
already has (400 "Cannot transition status via ..."), starts a new status once the
previous one finished, paginates notes with X-Next-Page, and lets only a note's author
edit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fakes.server import ApiError, Call, FakeApi, check_fields, page_of

STATUS_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
TRANSITIONS = {"pending": "enqueue", "running": "run"}
OPEN_STATES = {"pending", "running"}
PROJECT = r"/projects/(?P<project>[^/]+)"


@dataclass
class FakeGitLab(FakeApi):
    """tokens maps an access token to its username; projects maps a project path to its
    numeric id; merge_requests and commits list what exists."""

    prefix: str = "/api/v4"
    tokens: dict[str, str] = field(default_factory=dict)
    projects: dict[str, int] = field(default_factory=dict)
    merge_requests: set[tuple[int, int]] = field(default_factory=set)
    commits: set[str] = field(default_factory=set)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._next_id = 700
        self.route("GET", r"/user", self._get_user)
        self.route("POST", PROJECT + r"/statuses/(?P<sha>[^/]+)", self._create_status)
        notes = PROJECT + r"/merge_requests/(?P<iid>\d+)/notes"
        self.route("GET", notes, self._list_notes)
        self.route("POST", notes, self._create_note)
        self.route("PUT", notes + r"/(?P<note>\d+)", self._edit_note)

    def add_note(
        self, project_id: int, iid: int, body: str, user: str, system: bool = False
    ) -> int:
        self._next_id += 1
        self.notes[self._next_id] = {
            "id": self._next_id,
            "project_id": project_id,
            "iid": iid,
            "body": body,
            "author": user,
            "system": system,
        }
        return self._next_id

    def notes_on(self, project_id: int, iid: int) -> list[dict[str, Any]]:
        return [n for n in self.notes.values() if (n["project_id"], n["iid"]) == (project_id, iid)]

    def authenticate(self, call: Call) -> str:
        token = call.headers.get("private-token")
        if token not in self.tokens:
            raise ApiError(401, "401 Unauthorized")
        return self.tokens[token]

    def _get_user(self, call: Call) -> tuple[int, Any]:
        return 200, {"id": 1, "username": call.user}

    def _project(self, project: str) -> int:
        """Resolve a numeric id or an encoded path to the project's id.

        A raw slash never reaches here because the route's segment excludes it. So an
        unencoded group/name is a 404, as on GitLab."""
        if project.isdigit() and int(project) in self.projects.values():
            return int(project)
        found = self.projects.get(unquote(project))
        if found is None:
            raise ApiError(404, "404 Project Not Found")
        return found

    def _create_status(self, call: Call, project: str, sha: str) -> tuple[int, Any]:
        project_id = self._project(project)
        body = check_fields(
            call.body,
            {"state": str},
            {
                "ref": str,
                "name": str,
                "context": str,
                "target_url": str,
                "description": str,
                "coverage": float,
                "pipeline_id": int,
            },
            status=400,
        )
        if body["state"] not in STATUS_STATES:
            raise ApiError(400, "state does not have a valid value")
        if sha not in self.commits:
            raise ApiError(404, "404 References for commit Not Found")
        name = body.get("name", body.get("context", "default"))
        current = self._open_status(project_id, sha, name)
        if current is not None and current["status"] == body["state"]:
            event = TRANSITIONS[body["state"]]
            raise ApiError(400, f"Cannot transition status via :{event} from :{current['status']}")
        if current is None:
            current = {
                "id": len(self.statuses) + 1,
                "project_id": project_id,
                "sha": sha,
                "name": name,
            }
            self.statuses.append(current)
        current.update(
            status=body["state"],
            target_url=body.get("target_url"),
            description=body.get("description"),
        )
        return 201, current

    def _open_status(self, project_id: int, sha: str, name: str) -> dict[str, Any] | None:
        for status in reversed(self.statuses):
            same = (status["project_id"], status["sha"], status["name"]) == (project_id, sha, name)
            if same and status["status"] in OPEN_STATES:
                return status
        return None

    def _merge_request(self, project: str, iid: str) -> tuple[int, int]:
        key = (self._project(project), int(iid))
        if key not in self.merge_requests:
            raise ApiError(404, "404 Not found")
        return key

    def _list_notes(self, call: Call, project: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project_id, number = self._merge_request(project, iid)
        # GitLab lists notes newest first unless sort=asc.
        ascending = call.query.get("sort", ["desc"])[0] == "asc"
        ordered = sorted(
            self.notes_on(project_id, number), key=lambda n: n["id"], reverse=not ascending
        )
        items, page, last = page_of(ordered, call.query, default=20)
        headers = {
            "X-Page": str(page),
            "X-Total-Pages": str(last),
            "X-Next-Page": str(page + 1) if page < last else "",
        }
        return 200, [_note_json(n) for n in items], headers

    def _create_note(self, call: Call, project: str, iid: str) -> tuple[int, Any]:
        project_id, number = self._merge_request(project, iid)
        body = check_fields(call.body, {"body": str}, status=400)
        note_id = self.add_note(project_id, number, body["body"], call.user or "")
        return 201, _note_json(self.notes[note_id])

    def _edit_note(self, call: Call, project: str, iid: str, note: str) -> tuple[int, Any]:
        project_id, number = self._merge_request(project, iid)
        found = self.notes.get(int(note))
        if found is None or (found["project_id"], found["iid"]) != (project_id, number):
            raise ApiError(404, "404 Not found")
        if found["author"] != call.user:
            raise ApiError(403, "403 Forbidden")
        body = check_fields(call.body, {"body": str}, status=400)
        found["body"] = body["body"]
        return 200, _note_json(found)


def _note_json(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": note["id"],
        "body": note["body"],
        "author": {"username": note["author"]},
        "system": note["system"],
    }
