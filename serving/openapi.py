"""The OpenAPI document must describe the API as it behaves, so a client generated from it
works: every status code a route can answer is declared with the real error body
(`ErrorResponse`), request bodies state that unknown fields are refused
(`additionalProperties: false`), and the admin routes declare their bearer scheme.

Handlers declare their error statuses with `errors(...)`; `finalize_openapi` adds what
Litestar cannot derive from the msgspec structs. `tests/test_serving_schema.py` runs
schemathesis with every check against the document to keep the two in agreement.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import msgspec
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme

from serving.validation import ErrorResponse

ADMIN_SECURITY = [{"adminBearer": []}]
SECURITY_SCHEMES = {
    "adminBearer": SecurityScheme(
        type="http",
        scheme="bearer",
        description="The token in RETAIL_ADMIN_TOKEN on the server.",
    )
}
COMPONENTS = Components(security_schemes=SECURITY_SCHEMES)

_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "No 'Authorization: Bearer <token>' header.",
    403: "Wrong admin token, or the admin API is disabled (RETAIL_ADMIN_TOKEN unset).",
    404: "No such model (the error names the served ones).",
    409: "The operation conflicts with the current state (unknown version, invalid bundle, "
    "nothing to roll back to, no candidate); the error says which.",
    413: "The body is larger than RETAIL_SERVING_MAX_BODY_BYTES.",
    422: "Invalid fields: `fields` names every one (missing, wrong type, out of range, not "
    "finite, unknown, or a value the current state refuses such as a payment timestamp "
    "outside the serving clock's window).",
    503: "A model, feature table, index or the registry is not available yet; `detail` says which.",
}

# Shorthands for the usual combinations.
BODY_ERRORS = (400, 413, 422)
ADMIN_ERRORS = (401, 403)


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """Response declarations for these error statuses, all with the `ErrorResponse` body."""
    return {
        code: ResponseSpec(
            data_container=ErrorResponse, description=_DESCRIPTIONS[code], generate_examples=False
        )
        for code in sorted(set(codes))
    }


def _request_structs(app: Litestar) -> set[type[msgspec.Struct]]:
    """Every msgspec struct reachable from a handler's request body."""
    found: set[type[msgspec.Struct]] = set()

    def visit(annotation: Any) -> None:
        if get_origin(annotation) is not None:
            for arg in get_args(annotation):
                visit(arg)
            return
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            if annotation in found:
                return
            found.add(annotation)
            for field in msgspec.structs.fields(annotation):
                visit(field.type)

    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            parameter = handler.parsed_fn_signature.parameters.get("data")
            if parameter is not None:
                visit(parameter.annotation)
    return found


def _restore_zero_bounds(struct: type[msgspec.Struct], properties: dict[str, Any]) -> None:
    """Litestar drops a lower bound of 0 (`ge=0` / `gt=0`) from an optional number's schema;
    put back the bounds msgspec enforces."""
    info = msgspec.inspect.type_info(struct)
    for field in info.fields:
        schema = properties.get(field.encode_name)
        field_type = field.type
        if schema is None or not isinstance(field_type, msgspec.inspect.UnionType):
            continue
        for member in field_type.types:
            if isinstance(member, msgspec.inspect.IntType | msgspec.inspect.FloatType):
                if member.ge is not None and getattr(schema, "minimum", None) is None:
                    schema.minimum = member.ge
                if member.gt is not None and getattr(schema, "exclusive_minimum", None) is None:
                    schema.exclusive_minimum = member.gt


def finalize_openapi(app: Litestar) -> None:
    """Complete the generated document before it is first served: request structs that
    forbid unknown fields say so, zero lower bounds of optional numbers are restored, and a
    struct's `__openapi_properties__` (constraints its runtime types cannot carry) replace
    the generated property schemas."""
    schemas = app.openapi_schema.components.schemas or {}
    for struct in _request_structs(app):
        schema = schemas.get(struct.__name__)
        if schema is None:
            continue
        if struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        _restore_zero_bounds(struct, schema.properties or {})
        overrides = getattr(struct, "__openapi_properties__", None)
        if overrides:
            schema.properties = {**(schema.properties or {}), **overrides}
