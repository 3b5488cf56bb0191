"""Loader for apsw's own shell: gives the shell's current connection the OpenAI tables.

    python -m apsw -init examples/load_openai_vtab.py experiments.db
    sqlite> .read examples/load_openai_vtab.py        (again after .open: it covers the current connection)

apsw's shell runs this file with ``db`` bound to its current connection (and ``shell`` to itself). Settings
come from the environment, as the official SDK reads them: OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID,
OPENAI_PROJECT_ID. The ``openai-vtab`` command is this shell with the tables on every connection already.
The tables are registered read-only: to let INSERT, UPDATE and DELETE call the API, make the line below
``openai_vtab.register(db, allow_writes=True)``.
"""

import openai_vtab

openai_vtab.register(db)  # noqa: F821 - bound by apsw's shell
