"""The schema's error responses (drf-spectacular postprocessing): every operation documents
the statuses it may answer with, each with the market's error body, so that a generated
client knows them (an outside fuzzer found 70 undocumented ones)."""

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, for a person."},
        "errors": {"type": "object", "description": "Validation errors: field -> messages."},
        "request_id": {"type": "string", "description": "A 500's request, for operators."},
    },
    "required": ["detail"],
}
GENERIC = {
    "400": "Bad input: the detail names the field or parameter.",
    "404": "No such object, or one you may not see.",
    "500": "A bug: the body's request_id finds the traceback in the server's log.",
}
AUTHENTICATED = {
    "401": "No valid token.",
    "403": "Not allowed: another's object, an operator's route, or a machine token off its "
           "machine's routes.",
}
# Statuses particular routes answer with, by (path prefix, method or "*").
SPECIFIC = [
    ("/api/jobs/", "POST", {"402": "Your available credits cannot cover the job's cap.",
                            "429": "Too many environment builds of yours at once."}),
    ("/api/inference/", "POST", {"402": "Your available credits cannot cover the job's cap."}),
    ("/api/envs/", "POST", {"413": "Your file store's quota is full.",
                            "429": "Too many environment builds of yours at once."}),
    ("/api/files/", "PUT", {"411": "No Content-Length.",
                            "413": "Your file store's quota is full."}),
    ("/api/auth/", "POST", {"429": "Too many attempts; wait."}),
    ("/api/auth/login/", "POST", {"401": "Wrong username or password."}),
    ("/api/jobs/{id}/executors/", "GET", {"503": "The Spark master or history server does "
                                                 "not answer."}),
    ("/api/cluster/", "GET", {"503": "The Spark master does not answer."}),
    ("/api/health/", "GET", {}),
]
TOKEN_IN_URL = ("/inputs/", "/environment/")


def add_error_responses(result, generator, request, public):
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            found = dict(GENERIC)
            secured = operation.get("security") not in (None, [], [{}])
            if secured:
                found.update(AUTHENTICATED)
            elif any(part in path for part in TOKEN_IN_URL):
                found["403"] = "Not a valid credential for this job's files, or it expired."
            if method.upper() != "GET":
                found["409"] = "The object's state does not allow it now (the detail says why)."
            for prefix, verb, statuses in SPECIFIC:
                if path.startswith(prefix) and verb in (method.upper(), "*"):
                    found.update(statuses)
            for code, description in found.items():
                operation["responses"].setdefault(code, {
                    "description": description,
                    "content": {"application/json": {"schema": ERROR}}})
    return result
