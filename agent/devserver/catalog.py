"""Connections and jobs: what exists, persisted as one JSON file when the server has a data
directory. Validation of job specs lives in `jobs.py`; this module only keeps the records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agent.devserver.errors import Conflict, NotFound
from agent.devserver.jobs import Job
from agent.devserver.names import check_name

__all__ = ["Catalog", "Connection", "check_name"]


@dataclass(frozen=True, slots=True)
class Connection:
    name: str
    created_timestamp: str

    def to_json(self, endpoint_url: str) -> dict[str, Any]:
        return {
            "type": "push_streaming",
            "name": self.name,
            "endpointUrl": endpoint_url,
            "createdTimestamp": self.created_timestamp,
        }


class Catalog:
    """Connections by name and jobs by id; saved after every change when `path` is set."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self.connections: dict[str, Connection] = {}
        self.jobs: dict[str, Job] = {}
        if path is not None and path.exists():
            self._load(path)

    def __repr__(self) -> str:
        return f"<Catalog connections={len(self.connections)} jobs={len(self.jobs)}>"

    def add_connection(self, connection: Connection) -> None:
        if connection.name in self.connections:
            raise Conflict(f"connection {connection.name!r} already exists")
        self.connections[connection.name] = connection
        self._save()

    def connection(self, name: str) -> Connection:
        found = self.connections.get(name)
        if found is None:
            raise NotFound(f"connection {name!r} does not exist")
        return found

    def remove_connection(self, name: str) -> None:
        self.connection(name)
        readers = [
            job.id for job in self.jobs.values() if job.running and job.spec.connection_name == name
        ]
        if readers:
            raise Conflict(f"connection {name!r} is read by job(s) {', '.join(readers)}")
        del self.connections[name]
        self._save()

    def add_job(self, job: Job) -> None:
        for other in self.jobs.values():
            if other.running and other.spec.table_name == job.spec.table_name:
                raise Conflict(
                    f"table {job.spec.table_name!r} already has a streaming job ({other.id})"
                )
        self.jobs[job.id] = job
        self._save()

    def replace_job(self, job: Job) -> None:
        """Store a changed job (e.g. canceled) under its id."""
        self.job(job.id)
        self.jobs[job.id] = job
        self._save()

    def job(self, job_id: str) -> Job:
        found = self.jobs.get(job_id)
        if found is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return found

    def _save(self) -> None:
        if self._path is None:
            return
        document = {
            "version": 1,
            "connections": [
                {"name": c.name, "createdTimestamp": c.created_timestamp}
                for c in self.connections.values()
            ],
            "jobs": [job.to_record() for job in self.jobs.values()],
        }
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def _load(self, path: Path) -> None:
        document = orjson.loads(path.read_bytes())
        for item in document.get("connections", []):
            self.connections[item["name"]] = Connection(item["name"], item["createdTimestamp"])
        for record in document.get("jobs", []):
            job = Job.from_record(record)
            self.jobs[job.id] = job
