"""A local stand-in for the Hugging Face Hub's HTTP API: the endpoints ``huggingface_hub``
calls to create a repository, commit files (all as regular, base64 blobs), read a
revision, list its tree and download files. Enough for an offline push/pull round trip
through the real client (``HF_ENDPOINT`` pointed at it), nothing more."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    #: revision name (a branch, or a commit sha) -> {path: content}
    revisions: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    commits: dict[str, str] = field(default_factory=dict)  # branch -> its head commit sha


class FakeHub:
    """Serves on ``url`` until :meth:`close`; ``repos`` holds what was pushed."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, head=True)

            def do_GET(self) -> None:
                hub.handle(self)

            def do_POST(self) -> None:
                hub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client_env(self, hf_home: Path, **extra: str) -> dict[str, str]:
        """The environment of a process whose ``huggingface_hub`` talks to this hub, with
        its own cache in ``hf_home``."""
        return {**os.environ, "HF_ENDPOINT": self.url, "HF_TOKEN": "hf_test", "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", **extra}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routing --------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, head: bool = False) -> None:
        path = unquote(urlparse(request.path).path)
        method = "HEAD" if head else request.command
        self.requests.append(f"{method} {path}")
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if method == "POST" else b""
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>.+)", self.preupload),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>.+)", self.commit),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>.+)", self.revision_info),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", self.tree),
            ("GET", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
            ("HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                status, headers, payload = handler(body=body, **match.groupdict())
                break
        else:
            status, headers, payload = 404, {"X-Error-Code": "EntryNotFound"}, b'{"error": "not found"}'
        request.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)), **headers}.items():
            request.send_header(key, value)
        request.end_headers()
        if not head:
            request.wfile.write(payload)

    # -- endpoints ------------------------------------------------------------------------

    def _repo(self, repo: str) -> Repo | None:
        return self.repos.get(repo)

    @staticmethod
    def _json(status: int, value: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return status, headers or {}, json.dumps(value).encode()

    def _missing_repo(self) -> tuple[int, dict[str, str], bytes]:
        return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    def create_repo(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        data = json.loads(body)
        repo = f"{data.get('organization') or 'user'}/{data['name']}"
        self.repos.setdefault(repo, Repo())
        return self._json(200, {"url": f"{self.url}/{repo}", "name": repo})

    def validate_yaml(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """A README's metadata (the YAML block it starts with) must be a mapping."""
        import yaml

        parts = json.loads(body)["content"].split("---\n", 2)
        try:
            ok = parts[0] == "" and len(parts) == 3 and isinstance(yaml.safe_load(parts[1]), dict)
        except yaml.YAMLError:
            ok = False
        return self._json(200 if ok else 400, {"errors": [] if ok else [{"message": "metadata is not a YAML mapping"}], "warnings": []})

    def preupload(self, repo: str, rev: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        files = json.loads(body)["files"]
        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})

    def commit(self, repo: str, rev: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        found = self._repo(repo)
        if found is None:
            return self._missing_repo()
        files = dict(found.revisions.get(rev, {}))
        for line in body.decode().splitlines():
            entry = json.loads(line)
            if entry["key"] == "file":
                files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
            elif entry["key"] == "deletedFile":
                files.pop(entry["value"]["path"], None)
        sha = hashlib.sha1(json.dumps(sorted((p, hashlib.sha256(c).hexdigest()) for p, c in files.items())).encode()).hexdigest()
        found.revisions[rev] = files
        found.revisions[sha] = files
        found.commits[rev] = sha
        return self._json(200, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

    def _files(self, repo: str, rev: str) -> tuple[Repo | None, dict[str, bytes] | None, str]:
        found = self._repo(repo)
        if found is None:
            return None, None, ""
        files = found.revisions.get(rev)
        return found, files, found.commits.get(rev, rev)

    def revision_info(self, repo: str, rev: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        found, files, sha = self._files(repo, rev)
        if found is None:
            return self._missing_repo()
        if files is None:
            return self._json(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return self._json(200, {"id": repo, "modelId": repo, "sha": sha, "private": False, "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, repo: str, rev: str, sub: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
        found, files, _ = self._files(repo, rev)
        if found is None or files is None:
            return self._missing_repo()
        return self._json(200, [{"type": "file", "path": p, "size": len(c), "oid": hashlib.sha1(c).hexdigest()} for p, c in sorted(files.items())])

    def resolve(self, repo: str, rev: str, file: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        found, files, sha = self._files(repo, rev)
        if found is None:
            return self._missing_repo()
        if files is None or file not in files:
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        content = files[file]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(content).hexdigest()}"', "Content-Type": "application/octet-stream"}
        return 200, headers, content
