"""A tiny Hugging Face hub served from local files, for testing `repro fetch` without the real hub.

It answers the requests huggingface_hub 2.x makes for `snapshot_download` (read from its source):
  GET  /api/{models|datasets}/{id}/revision/{rev}          repo info: `sha` is the commit
  GET  /api/{models|datasets}/{id}/tree/{rev}?recursive=1   file listing (one page)
  HEAD|GET /{id}/resolve/{rev}/{path}, /datasets/{id}/resolve/{rev}/{path}
          with X-Repo-Commit, ETag (the sha256, as for LFS files) and Content-Length.
Each repo has commits (sha → {path in repo: local file}) and refs (branch → sha).
Run standalone for docker/ci.sh: `python tests/hub_server.py --port 8765 --model ID=DIR --gsm8k-from DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Repo:
    """One hub repository: commits and branch refs."""

    commits: dict[str, dict[str, Path]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def add_commit(self, files: dict[str, Path], branch: str = "main") -> str:
        """Add a commit holding `files` (its sha derives from their contents) and move `branch` to it."""
        h = hashlib.sha1(json.dumps(self.refs, sort_keys=True).encode())
        for rel in sorted(files):
            h.update(f"{rel}\0{sha256(files[rel])}\n".encode())
        sha = h.hexdigest()
        self.commits[sha], self.refs[branch] = dict(files), sha
        return sha

    def resolve(self, rev: str) -> str | None:
        return rev if rev in self.commits else self.refs.get(rev)


def directory_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def gsm8k_repo(jsonl_dir: Path, out: Path, limits: dict[str, int] | None = None) -> Path:
    """GSM8K JSONL files as the hub dataset lays them out: main/{split}-00000-of-00001.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "main").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        lines = (jsonl_dir / f"{split}.jsonl").read_text().splitlines()[: (limits or {}).get(split)]
        table = pa.Table.from_pylist([json.loads(line) for line in lines])
        pq.write_table(table, out / "main" / f"{split}-00000-of-00001.parquet")
    (out / "README.md").write_text("GSM8K served by tests/hub_server.py\n")
    return out


API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?$")
RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args) -> None:  # quiet: tests read the request log instead
        pass

    def do_GET(self) -> None:
        self.respond(body=True)

    def do_HEAD(self) -> None:
        self.respond(body=False)

    def respond(self, body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(f"{self.command} {path}")
        api, res = API.match(path), RESOLVE.match(path)
        if api:
            self.api(api.group(1)[:-1], api.group(2), api.group(3), api.group(4))
        elif res:
            self.file(("dataset" if res.group(1) else "model"), res.group(2), res.group(3), res.group(4), body)
        else:
            self.error(404, "EntryNotFound")

    def repo_commit(self, kind: str, repo_id: str, rev: str) -> tuple[Repo, str] | None:
        repo = self.hub.repos.get((kind, repo_id))
        if repo is None:
            self.error(404, "RepoNotFound")
            return None
        sha = repo.resolve(rev)
        if sha is None:
            self.error(404, "RevisionNotFound")
            return None
        return repo, sha

    def api(self, kind: str, repo_id: str, what: str, rev: str) -> None:
        found = self.repo_commit(kind, repo_id, rev)
        if found is None:
            return
        repo, sha = found
        files = repo.commits[sha]
        if what == "revision":
            payload = {"id": repo_id, "sha": sha, "siblings": [{"rfilename": rel} for rel in files]}
        else:
            payload = [
                {"type": "file", "path": rel, "size": p.stat().st_size, "oid": sha256(p)[:40],
                 "lfs": {"oid": sha256(p), "size": p.stat().st_size, "pointerSize": 130}}
                for rel, p in files.items()
            ]  # fmt: skip
        self.send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, True)

    def file(self, kind: str, repo_id: str, rev: str, rel: str, body: bool) -> None:
        found = self.repo_commit(kind, repo_id, rev)
        if found is None:
            return
        repo, sha = found
        if rel not in repo.commits[sha]:
            self.error(404, "EntryNotFound")
            return
        data = repo.commits[sha][rel].read_bytes()
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        self.send(200, self.hub.lies.get(rel, data), headers, body)  # a lie keeps the true file's ETag

    def error(self, status: int, code: str) -> None:
        self.send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code}, True)

    def send(self, status: int, data: bytes, headers: dict, body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


class FakeHub:
    """The server: `repos[(kind, id)]`, `requests` (every request line), `url` once started;
    `lies[path in repo]`: bytes served for that file instead of its own, under its own ETag."""

    def __init__(self, port: int = 0):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[str] = []
        self.lies: dict[str, bytes] = {}
        handler = type("BoundHandler", (Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, kind: str, repo_id: str, files: dict[str, Path]) -> str:
        """Commit `files` to repo `repo_id` (created on first use); returns the commit sha."""
        return self.repos.setdefault((kind, repo_id), Repo()).add_commit(files)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", action="append", default=[], metavar="ID=DIR")
    parser.add_argument("--dataset", action="append", default=[], metavar="ID=DIR")
    parser.add_argument("--gsm8k-from", type=Path, help="serve this JSONL GSM8K as openai/gsm8k (parquet)")
    args = parser.parse_args()
    hub = FakeHub(args.port)
    if args.gsm8k_from:
        out = gsm8k_repo(args.gsm8k_from, Path(tempfile.mkdtemp(prefix="hub-gsm8k-")))
        args.dataset.append(f"openai/gsm8k={out}")
    for kind, items in (("model", args.model), ("dataset", args.dataset)):
        for item in items:
            repo_id, _, root = item.partition("=")
            print(f"{kind} {repo_id} commit {hub.add(kind, repo_id, directory_files(Path(root)))}", flush=True)
    print(f"serving {hub.url}", flush=True)
    hub.server.serve_forever()


if __name__ == "__main__":
    main()
