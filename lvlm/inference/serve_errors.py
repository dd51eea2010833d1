"""Errors of the OpenAI-compatible server: an HTTP status and the body OpenAI's clients parse.

OpenAI answers ``{"error": {"message", "type", "param", "code"}}``; its Python client raises
``BadRequestError`` (400), ``AuthenticationError`` (401), ``PermissionDeniedError`` (403), ``NotFoundError``
(404) and ``APIStatusError`` for the others, with that body attached. Every refusal of the server is an
:class:`ApiError`, so a request can only ever fail with such a body, never take the server down.
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request the server refuses (4xx) or could not answer (5xx).

    Attributes:
        status: HTTP status code.
        message: what was wrong and what to do.
        code: a short machine-readable code (``media_too_large``, ``context_length_exceeded``, ...).
        param: the request field at fault, when there is one (``messages[0].content[1]``).
    """

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def __reduce__(self) -> tuple:  # raised in a preparation worker, unpickled in the server
        return (type(self), (self.status, self.message, self.code, self.param))

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's API answers an error with."""
        kind = ERROR_TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    """A 400 for a request that is malformed or asks for something the server does not do."""
    return ApiError(400, message, code, param)
