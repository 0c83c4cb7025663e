"""A small HTTP client for the dmarket API: JSON in, JSON out, errors as ApiError."""

import requests

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
        self.session.headers["User-Agent"] = f"dmarket-client/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def url(self, path):
        return path if path.startswith("http") else f"{self.server}/api/{path.lstrip('/')}"

    def request(self, method, path, json=None, params=None, stream=False):
        try:
            response = self.session.request(method, self.url(path), json=json, params=params,
                                            timeout=self.timeout, stream=stream)
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

    def download(self, path, destination, progress=None):
        """Stream a file to `destination` (never whole in memory); returns its size."""
        response = self.request("GET", path, stream=True)
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        with open(destination, "wb") as f:
            for chunk in response.iter_content(1024 * 1024):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        return done
