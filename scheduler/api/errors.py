"""Errors as JSON ``{code, message}``; one place turns exceptions into responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle.errors import InputError, OracleError


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(InputError, _input_error)  # type: ignore[arg-type]
    app.add_exception_handler(OracleError, _oracle_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(error.code, error.message), error.status, headers=headers)


async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    return JSONResponse(error_body("invalid_request", message), 422)


async def _input_error(_request: Request, error: InputError) -> JSONResponse:
    return JSONResponse(error_body("invalid_request", str(error)), 422)


async def _oracle_error(_request: Request, error: OracleError) -> JSONResponse:
    # An infeasible plan (exit code 1 on the command line) is a conflict with the data.
    status = 409 if getattr(error, "exit_code", 2) == 1 else 400
    code = "infeasible" if status == 409 else "bad_request"
    return JSONResponse(error_body(code, str(error)), status)


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return JSONResponse(error_body(code, str(error.detail)), error.status_code)
