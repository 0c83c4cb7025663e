"""A small HTTP client for the dmarket API: JSON in, JSON out, errors as ApiError."""

import hashlib
import itertools
import os

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import __version__


class ApiError(Exception):
    """The server refused (status, its message), or could not be reached (status None)."""

    def __init__(self, status, detail, body=None):
        self.status = status
        self.detail = detail
        self.body = body
        super().__init__(f"{status}: {detail}" if status else detail)


class Client:
    def __init__(self, server, token=None, timeout=30):
        self.server = server.rstrip("/")
        self.timeout = timeout
        # The HTTP status of the latest response (e.g. 200 or 202 for a cancel).
        self.last_status = None
        self.session = requests.Session()
        # A kept-alive connection that the server closes (gunicorn: after 2 s idle) just as a
        # request goes out on it fails with "connection reset": a GET is safe to send again,
        # on a new connection. Nothing else is repeated.
        retry = Retry(total=2, connect=2, read=2, status=0, other=0, backoff_factor=0.1,
                      allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.session.headers["User-Agent"] = f"dmarket-compute/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def url(self, path):
        return path if path.startswith("http") else f"{self.server}/api/{path.lstrip('/')}"

    def request(self, method, path, json=None, params=None, stream=False, data=None,
                headers=None):
        try:
            response = self.session.request(method, self.url(path), json=json, params=params,
                                            timeout=self.timeout, stream=stream, data=data,
                                            headers=headers)
        except requests.RequestException as e:
            raise ApiError(None, f"cannot reach the server at {self.server}: {e}") from None
        self.last_status = response.status_code
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = body.get("detail") if isinstance(body, dict) else None
            except ValueError:
                body, detail = None, None
            status, reason = response.status_code, response.reason
            # The error's traceback keeps this frame: without this, it would keep the response
            # and so its connection open (even after the session is closed).
            response.close()
            del response
            raise ApiError(status, detail or f"HTTP {status} {reason}", body)
        if stream:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path, **params):
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path, json=None):
        return self.request("POST", path, json=json if json is not None else {})

    def delete(self, path):
        return self.request("DELETE", path)

    def pages(self, path, **params):
        """Every item of a paginated list, following `next`."""
        page = self.get(path, **params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])

    def first(self, path, limit, **params):
        """At most `limit` items of a paginated list, in as few pages as the server allows."""
        return list(itertools.islice(self.pages(path, page_size=min(limit, 500), **params),
                                     limit))

    def download(self, path, destination, progress=None, params=None, digest=None):
        """Stream a file to `destination` (never whole in memory), feeding `digest` (a
        hashlib object) on the way; returns (its size, the response's headers)."""
        response = self.request("GET", path, stream=True, params=params)
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        with response, open(destination, "wb") as f:
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        return done, response.headers

    def upload(self, path, source, sha256, params=None, progress=None):
        """PUT the file `source` as the body, read a chunk at a time (never whole in memory),
        with its SHA-256 for the server to check; returns the server's JSON answer."""
        size = os.path.getsize(source)
        with open(source, "rb") as f:
            body = ProgressReader(f, size, progress)
            return self.request("PUT", path, params=params, data=body, headers={
                "Content-Type": "application/octet-stream", "X-Content-SHA256": sha256})


CHUNK = 1024 * 1024


class ProgressReader:
    """A file that requests sends in chunks, with a known length (so the request carries a
    Content-Length: the server refuses chunked uploads), reporting progress as it goes."""

    def __init__(self, f, size, progress=None):
        self.f, self.size, self.progress, self.done = f, size, progress, 0

    def __len__(self):
        return self.size

    def read(self, n=-1):
        chunk = self.f.read(n if n and n > 0 else CHUNK)
        self.done += len(chunk)
        if self.progress and chunk:
            self.progress(self.done, self.size)
        return chunk


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
