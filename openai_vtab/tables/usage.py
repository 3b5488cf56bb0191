"""What the organization spent and used: costs, and usage per kind of API (completions, embeddings, ...).

These endpoints answer with time buckets, each holding the results of its time range (one row per result,
carrying its bucket's ``start_time`` and ``end_time``), page with a ``next_page`` token, and need an admin key
(OPENAI_ADMIN_KEY). They require ``start_time``: a query must give a lower bound on it (``start_time >= X``),
and ``end_time <= X`` / ``< X`` is sent too. Each table asks for the finest grouping the API offers, every
``group_by`` field, so that SQL can add results up any way; a field the endpoint cannot group by is NULL.
"""

from __future__ import annotations

from ..paging import PAGE_TOKEN
from .declare import Bound, Column, Option, Table

__all__ = [
    "USAGE_TABLES",
    "costs",
    "usage_audio_speeches",
    "usage_audio_transcriptions",
    "usage_code_interpreter_sessions",
    "usage_completions",
    "usage_embeddings",
    "usage_file_search_calls",
    "usage_images",
    "usage_moderations",
    "usage_vector_stores",
    "usage_web_search_calls",
]

_WINDOW = "start_time >= unixepoch('now', '-30 days')"
_START = Column(
    "start_time",
    "INTEGER",
    source="parent.start_time",
    doc="Unix time (seconds) the result's bucket starts. A lower bound (`>=`, `>`, `=`) is required and sent "
    "to the API as `start_time`.",
    bounds=(Bound("start_time", (">=", ">", "="), required=True, example=_WINDOW),),
)
_END = Column(
    "end_time",
    "INTEGER",
    source="parent.end_time",
    doc="Unix time the bucket ends (exclusive); `<=` and `<` are sent to the API as `end_time`.",
    bounds=(Bound("end_time", ("<=", "<")),),
)
_GROUPS = {
    "project_id": "Project of the result, e.g. 'proj_abc'.",
    "user_id": "User of the result.",
    "api_key_id": "API key of the result (its id, e.g. 'key_abc').",
    "model": "Model of the result, e.g. 'gpt-4o-mini-2024-07-18'.",
    "batch": "1 for Batch API requests, 0 for the others.",
    "service_tier": "Service tier, e.g. 'default', 'flex', 'priority'.",
    "source": "Where images came from: 'image.generation', 'image.edit', 'image.variation'.",
    "size": "Image size, e.g. '1024x1024'.",
    "vector_store_id": "Vector store searched.",
    "context_level": "Search context level: 'low', 'medium' or 'high'.",
}
_WIDTH = Option(
    "bucket_width",
    default="1d",
    choices=("1d", "1h", "1m"),
    doc="Width of the buckets: '1d' (the default), '1h' or '1m'; `= '1h'` asks the API for hourly buckets.",
)
# The most buckets one page may hold, per bucket width (the API's maxima).
_PAGE_SIZES = {"1d": 31, "1h": 168, "1m": 1440}


# The result objects' names, where they differ from the kind's.
_OBJECTS = {"file_search_calls": "file_searches", "web_search_calls": "web_searches"}


def _usage(kind: str, doc: str, counts: dict[str, str], groups: tuple[str, ...], example: str) -> Table:
    """One usage table: its counts, the fields it groups by, and the bucket times."""
    return Table(
        name=f"usage_{kind}",
        path=f"/organization/usage/{kind}",
        doc=f"{doc} Needs an admin key (OPENAI_ADMIN_KEY).",
        columns=(
            _START,
            _END,
            *(Column(name, "INTEGER", doc=text) for name, text in counts.items()),
            *(Column(name, "INTEGER" if name == "batch" else "TEXT", doc=_GROUPS[name]) for name in groups),
            Column("object", doc=f"Always 'organization.usage.{_OBJECTS.get(kind, kind)}.result'."),
        ),
        example=example,
        options=(_WIDTH,),
        params={"group_by": list(groups)},
        paging=PAGE_TOKEN,
        page_size=_PAGE_SIZES,
        items="data[].results[]",
        identity=("start_time", *groups),
        admin=True,
    )


_REQUESTS = {"num_model_requests": "Requests made to the model."}
_PEOPLE = ("project_id", "user_id", "api_key_id", "model")

costs = Table(
    name="costs",
    path="/organization/costs",
    doc="What the organization spent, per day, project, line item and API key. Needs an admin key (OPENAI_ADMIN_KEY).",
    columns=(
        _START,
        _END,
        Column("amount_value", "REAL", source="amount.value", doc="The cost, in amount_currency."),
        Column("amount_currency", source="amount.currency", doc="Lowercase ISO-4217 currency, e.g. 'usd'."),
        Column("line_item", doc="What was billed, e.g. 'ft-gpt-4o-mini-2024-07-18, training'."),
        Column("project_id", doc="Project that spent it, e.g. 'proj_abc'."),
        Column("api_key_id", doc="API key that spent it, or NULL."),
        Column("quantity", "REAL", doc="How much of the line item, in quantity_unit, or NULL."),
        Column("quantity_unit", doc="tokens, 1000_tokens, images, ..., or NULL."),
        Column("object", doc="Always 'organization.costs.result'."),
    ),
    example=f"SELECT date(start_time, 'unixepoch') AS day, project_id, sum(amount_value) AS usd FROM costs "
    f"WHERE {_WINDOW} GROUP BY day, project_id ORDER BY day",
    params={"group_by": ["project_id", "line_item", "api_key_id"]},
    paging=PAGE_TOKEN,
    page_size=180,
    items="data[].results[]",
    identity=("start_time", "project_id", "line_item", "api_key_id"),
    admin=True,
)

usage_completions = _usage(
    "completions",
    "Tokens and requests of chat completions and responses, per bucket, project, user, key, model, batch and tier.",
    {
        "input_tokens": "Input tokens, cached and cache-write tokens included.",
        "output_tokens": "Output tokens.",
        "input_cached_tokens": "Cached input tokens.",
        "input_audio_tokens": "Uncached audio input tokens.",
        "output_audio_tokens": "Audio output tokens.",
        **_REQUESTS,
    },
    (*_PEOPLE, "batch", "service_tier"),
    f"SELECT model, sum(input_tokens), sum(output_tokens) FROM usage_completions WHERE {_WINDOW} GROUP BY model",
)
usage_embeddings = _usage(
    "embeddings",
    "Tokens and requests of embeddings.",
    {"input_tokens": "Input tokens.", **_REQUESTS},
    _PEOPLE,
    f"SELECT model, sum(input_tokens) FROM usage_embeddings WHERE {_WINDOW} GROUP BY model",
)
usage_moderations = _usage(
    "moderations",
    "Tokens and requests of moderations.",
    {"input_tokens": "Input tokens.", **_REQUESTS},
    _PEOPLE,
    f"SELECT project_id, sum(num_model_requests) FROM usage_moderations WHERE {_WINDOW} GROUP BY project_id",
)
usage_images = _usage(
    "images",
    "Images generated, edited and varied.",
    {"images": "Images processed.", **_REQUESTS},
    (*_PEOPLE, "size", "source"),
    f"SELECT size, sum(images) FROM usage_images WHERE {_WINDOW} GROUP BY size",
)
usage_audio_speeches = _usage(
    "audio_speeches",
    "Text-to-speech: characters and requests.",
    {"characters": "Characters spoken.", **_REQUESTS},
    _PEOPLE,
    f"SELECT model, sum(characters) FROM usage_audio_speeches WHERE {_WINDOW} GROUP BY model",
)
usage_audio_transcriptions = _usage(
    "audio_transcriptions",
    "Speech-to-text: seconds of audio and requests.",
    {"seconds": "Seconds transcribed.", **_REQUESTS},
    _PEOPLE,
    f"SELECT model, sum(seconds) FROM usage_audio_transcriptions WHERE {_WINDOW} GROUP BY model",
)
usage_vector_stores = _usage(
    "vector_stores",
    "Vector storage, in bytes, per project.",
    {"usage_bytes": "Bytes stored."},
    ("project_id",),
    f"SELECT project_id, max(usage_bytes) FROM usage_vector_stores WHERE {_WINDOW} GROUP BY project_id",
)
usage_code_interpreter_sessions = _usage(
    "code_interpreter_sessions",
    "Code interpreter sessions, per project.",
    {"num_sessions": "Sessions."},
    ("project_id",),
    f"SELECT project_id, sum(num_sessions) FROM usage_code_interpreter_sessions WHERE {_WINDOW} GROUP BY project_id",
)
usage_file_search_calls = _usage(
    "file_search_calls",
    "File search calls, per project, user, key and vector store.",
    {"num_requests": "File search calls."},
    ("project_id", "user_id", "api_key_id", "vector_store_id"),
    f"SELECT vector_store_id, sum(num_requests) FROM usage_file_search_calls WHERE {_WINDOW} GROUP BY 1",
)
usage_web_search_calls = _usage(
    "web_search_calls",
    "Web search calls and the model requests that made them.",
    {"num_requests": "Web search calls.", **_REQUESTS},
    (*_PEOPLE, "context_level"),
    f"SELECT context_level, sum(num_requests) FROM usage_web_search_calls WHERE {_WINDOW} GROUP BY 1",
)

USAGE_TABLES: tuple[Table, ...] = (
    costs,
    usage_completions,
    usage_embeddings,
    usage_moderations,
    usage_images,
    usage_audio_speeches,
    usage_audio_transcriptions,
    usage_vector_stores,
    usage_code_interpreter_sessions,
    usage_file_search_calls,
    usage_web_search_calls,
)
