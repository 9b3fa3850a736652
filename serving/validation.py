"""Client errors that name every offending field, never a 500.

Litestar decodes JSON bodies into msgspec structs and stops at the first problem. For a 422
we re-check the whole body against the handler's struct and report every field: missing,
wrong type, out of range, not finite (JSON has no NaN, but `1e999` decodes to infinity and
some clients send "NaN" strings) and unknown fields. Malformed JSON is a 400.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Annotated, Any, get_args, get_origin

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_422_UNPROCESSABLE_ENTITY,
)


class FieldError(msgspec.Struct):
    field: str
    message: str


class ErrorResponse(msgspec.Struct):
    status: int
    error: str
    detail: str
    fields: list[FieldError] = []
    problems: list[str] = []


def _not_finite(value: Any, path: str, out: list[FieldError]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        out.append(FieldError(path, "must be a finite number"))
    elif isinstance(value, dict):
        for key, inner in value.items():
            _not_finite(inner, f"{path}.{key}", out)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _not_finite(inner, f"{path}[{i}]", out)


def field_errors(payload: Any, struct_type: type, path: str = "$") -> list[FieldError]:
    """Every problem of `payload` (decoded JSON) against `struct_type`, one per field."""
    errors: list[FieldError] = []
    if not isinstance(payload, dict):
        return [FieldError(path, f"expected a JSON object, got {type(payload).__name__}")]
    info = msgspec.inspect.type_info(struct_type)
    known = {f.encode_name: f for f in info.fields}
    for name, field in known.items():
        field_path = f"{path}.{name}"
        if name not in payload:
            if field.required:
                errors.append(FieldError(field_path, "field required"))
            continue
        value = payload[name]
        finite_errors: list[FieldError] = []
        _not_finite(value, field_path, finite_errors)
        if finite_errors:
            errors.extend(finite_errors)
            continue
        field_type = _without_none(field.type)
        inner = getattr(field_type, "cls", None)
        if isinstance(value, dict) and inner is not None and issubclass(inner, msgspec.Struct):
            errors.extend(field_errors(value, inner, field_path))
            continue
        if isinstance(field_type, msgspec.inspect.ListType) and isinstance(value, list):
            item = getattr(field_type.item_type, "cls", None)
            if item is not None and issubclass(item, msgspec.Struct):
                for i, element in enumerate(value):
                    errors.extend(field_errors(element, item, f"{field_path}[{i}]"))
        try:
            _convert_field(value, struct_type, name)
        except msgspec.ValidationError as exc:
            message = str(exc).split(" - at `")[0]
            if not any(e.field.startswith(field_path) for e in errors):
                errors.append(FieldError(field_path, message))
    if (
        getattr(struct_type, "__struct_config__", None)
        and struct_type.__struct_config__.forbid_unknown_fields
    ):
        for name in payload:
            if name not in known:
                errors.append(FieldError(f"{path}.{name}", "unknown field"))
    return errors


def _without_none(field_type: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """`X | None` -> X (an optional list of structs is checked element by element, like a
    required one); any other type as it is."""
    if isinstance(field_type, msgspec.inspect.UnionType):
        types = [t for t in field_type.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(types) == 1:
            return types[0]
    return field_type


@functools.cache
def _single_field_struct(struct_type: type, name: str) -> type:
    field = next(f for f in msgspec.structs.fields(struct_type) if f.encode_name == name)
    return msgspec.defstruct(f"{struct_type.__name__}_{field.name}", [(name, field.type)])


def _convert_field(value: Any, struct_type: type, name: str) -> None:
    """Validate one field with the struct's own annotation and constraints.

    Through a one-field struct, not `convert(value, type=annotation)`: msgspec 0.22 corrupts
    memory converting a bare invalid value to a union of constrained str and list (segfault
    at the next garbage collection)."""
    msgspec.convert({name: value}, type=_single_field_struct(struct_type, name), strict=True)


def _body_struct(request: Request) -> type | None:
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    except AttributeError:
        return None
    annotation = getattr(parameter, "annotation", None) if parameter else None
    if get_origin(annotation) is Annotated:  # JSONBody[Struct]
        annotation = get_args(annotation)[0]
    return (
        annotation
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
        else None
    )


def _cached_body(request: Request) -> bytes | None:
    # Litestar keeps the body it already read on the connection state.
    body = getattr(request._connection_state, "body", None)
    return body if isinstance(body, bytes | bytearray) else None


def error_response(
    status: int,
    error: str,
    detail: str,
    fields: list[FieldError] | None = None,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        ErrorResponse(
            status=status,
            error=error,
            detail=detail,
            fields=fields or [],
            problems=problems or [],
        ),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _validation_response(request: Request, fallback: list[FieldError]) -> Response:
    struct_type = _body_struct(request)
    body = _cached_body(request)
    fields = fallback
    if struct_type is not None and body is not None:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_response(
                HTTP_400_BAD_REQUEST, "invalid_json", "request body is not valid JSON"
            )
        collected = field_errors(payload, struct_type)
        fields = collected or fallback
    return error_response(
        HTTP_422_UNPROCESSABLE_ENTITY,
        "validation_failed",
        f"{len(fields)} invalid field(s): " + ", ".join(f.field for f in fields),
        fields,
    )


# Litestar reports a missing required query/path/header parameter in `detail` only.
_MISSING_PARAMETER = re.compile(r"^Missing required \w+ parameter '([^']+)'")


def handle_validation(request: Request, exc: ValidationException) -> Response:
    missing = _MISSING_PARAMETER.match(str(exc.detail))
    fallback = [
        FieldError(f"$.{e.get('key', 'body')}", str(e.get("message", "invalid")))
        for e in (exc.extra or [])
        if isinstance(e, dict)
    ] or [
        FieldError(f"$.{missing.group(1)}", "field required")
        if missing
        else FieldError("$", str(exc.detail))
    ]
    return _validation_response(request, fallback)


def handle_client_error(request: Request, exc: ClientException) -> Response:
    """Malformed JSON is a 400; JSON that only Python's parser accepts (NaN, Infinity, 1e999)
    is well-formed enough to name the fields that are not finite, so it is a 422."""
    detail = str(exc.detail)
    body = _cached_body(request)
    if exc.status_code == HTTP_400_BAD_REQUEST and body is not None:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_response(
                HTTP_400_BAD_REQUEST, "invalid_json", f"request body is not valid JSON: {detail}"
            )
        if _body_struct(request) is not None:
            return _validation_response(request, [FieldError("$", detail)])
        del payload
    return error_response(
        exc.status_code,
        _ERROR_NAMES.get(exc.status_code, "client_error"),
        detail,
        headers=_headers(exc),
    )


_ERROR_NAMES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "service_unavailable",
}


def _headers(exc: HTTPException) -> dict[str, str] | None:
    """Headers the exception carries, e.g. `Allow` on a 405 (RFC 9110 requires it)."""
    return dict(exc.headers) if exc.headers else None


def handle_http_error(request: Request, exc: HTTPException) -> Response:
    return error_response(
        exc.status_code,
        _ERROR_NAMES.get(exc.status_code, "http_error"),
        str(exc.detail),
        headers=_headers(exc),
    )
