"""Differential tests: the virtual table answers SQL exactly as a plain SQLite table holding the same rows.

Every query below runs twice in one connection: once over ``job_checkpoints`` (rows fetched page by page from
the fake API) and once over ``plain_checkpoints``, an ordinary table filled straight from the fake's own data
(``api.state.checkpoints``), so the baseline is not produced by the code under test. Equal results prove that
planning (key pushdown, IN lists taken whole, LIMIT/OFFSET hints, no claimed order), paging (a job of 150
checkpoints spans two pages), stable rowids (multi-index OR), NULL and unknown keys (404 -> no rows) and the
column mapping (missing metrics -> NULL, metrics as compact JSON) leave SQL semantics untouched: joins with the
local table on either side, LEFT JOIN, IN subqueries, OR, GROUP BY/HAVING, window functions, correlated
subqueries, EXISTS, ORDER BY with LIMIT/OFFSET, json_each, DISTINCT, UNION, CTEs and the table-valued forms.
Empty sets (an IN subquery that selects nothing, joins from an empty table) and the join shapes SQLite plans
with extra heuristics (stars of three or more tables around the virtual table, chains, self-joins) are here
because each once failed where a plain table gives rows.

Results are compared as sorted multisets unless the query has a total ORDER BY (then exactly); a LIMIT without
ORDER BY may return any rows, so there only the count and membership in the unlimited result are checked.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apsw
import pytest

import openai_vtab
from openai_vtab.testing import FakeOpenAI

pytestmark = pytest.mark.filterwarnings("ignore::openai_vtab.UnknownKeyWarning")

VTAB = "job_checkpoints"
PLAIN = "plain_checkpoints"

# Jobs of the fake, by checkpoint count: none, one, a few, more than one page of 100, and a job with odd
# checkpoints (an empty metrics dict, a repeated step number). ODD has an id that must be percent-encoded.
EMPTY, ONE, THREE, BIG, SEVEN, INTS, ODD = (
    "ftjob-empty",
    "ftjob-one",
    "ftjob-three",
    "ftjob-big",
    "ftjob-seven",
    "ftjob-ints",
    "ftjob-odd/ü %",
)
UNKNOWN = "ftjob-unknown"  # the fake answers 404: the package warns and yields no rows
COUNTS = {EMPTY: 0, ONE: 1, THREE: 3, BIG: 150, SEVEN: 7, ODD: 2}

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT"),
    ("created_at", "INTEGER"),
    ("fine_tuned_model_checkpoint", "TEXT"),
    ("step_number", "INTEGER"),
    ("metrics", "TEXT"),
    ("object", "TEXT"),
    ("train_loss", "REAL"),
    ("train_mean_token_accuracy", "REAL"),
    ("valid_loss", "REAL"),
    ("valid_mean_token_accuracy", "REAL"),
    ("full_valid_loss", "REAL"),
    ("full_valid_mean_token_accuracy", "REAL"),
    ("fine_tuning_job_id", "TEXT"),
)
METRICS = [name for name, kind in COLUMNS if kind == "REAL"]
ALL = ", ".join(name for name, _ in COLUMNS)
VISIBLE = ", ".join(name for name, _ in COLUMNS[:-1])  # what SELECT * shows: the key column is hidden

MY_JOBS: tuple[tuple[str | None, str], ...] = (
    (THREE, "three"),
    (THREE, "three again"),  # a duplicate join key: every checkpoint of THREE joins twice
    (BIG, "big"),
    (EMPTY, "empty"),
    (None, "null id"),
    (UNKNOWN, "unknown"),
    ("", "blank id"),
    (SEVEN, "seven"),
    (ONE, "one"),
)
TAGS: tuple[tuple[str | None, str], ...] = (
    (THREE, "prod"),
    (THREE, "exp"),
    (SEVEN, "prod"),
    (BIG, "exp"),
    (UNKNOWN, "prod"),
    (None, "orphan"),
    (ODD, "exp"),
)


@dataclass(frozen=True)
class Case:
    """One query in its two spellings. ``mode``: ``multiset``, ``ordered``, or ``subset`` (LIMIT, no ORDER BY).

    For ``subset`` the plain side's ``full_sql`` (the query without its LIMIT) bounds what the vtab may return.
    """

    vtab_sql: str
    plain_sql: str
    mode: str = "multiset"
    full_sql: str = ""


def q(template: str, *, ordered: bool = False) -> Case:
    """A query written once: ``{T}`` becomes the virtual table on one side and the plain table on the other."""
    return Case(template.replace("{T}", VTAB), template.replace("{T}", PLAIN), "ordered" if ordered else "multiset")


def limited(template: str, full_template: str) -> Case:
    """A LIMIT without ORDER BY: same count, and every row drawn from ``full_template``'s plain result."""
    return Case(
        template.replace("{T}", VTAB), template.replace("{T}", PLAIN), "subset", full_template.replace("{T}", PLAIN)
    )


def pair(vtab_sql: str, plain_sql: str, *, ordered: bool = False) -> Case:
    """Table-valued syntax, which has no plain-table spelling: the plain side states the key in WHERE."""
    return Case(vtab_sql, plain_sql, "ordered" if ordered else "multiset")


K = "fine_tuning_job_id"
IN_ALL = f"{K} IN (SELECT id FROM my_jobs)"
IN_SMALL = f"{K} IN ('{THREE}', '{SEVEN}', '{ONE}')"
NONE = "(SELECT id FROM no_jobs)"  # an IN subquery over an empty table

CASES: dict[str, Case] = {
    # -- the key: =, IN lists, IN subqueries, NULL, unknown, empty --------------------------------------
    "eq-key": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = '{THREE}'"),
    "eq-key-two-pages": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = '{BIG}'"),
    "eq-key-no-checkpoints": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = '{EMPTY}'"),
    "eq-key-unknown": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = '{UNKNOWN}'"),
    "eq-key-blank": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = ''"),
    "eq-key-percent-encoded-id": q(f"SELECT {ALL} FROM {{T}} WHERE {K} = '{ODD}'"),
    "eq-key-written-reversed": q(f"SELECT id, step_number FROM {{T}} WHERE '{SEVEN}' = {K}"),
    "eq-key-expression": q(f"SELECT id, step_number FROM {{T}} WHERE {K} = 'ftjob-' || 'three'"),
    "eq-null": q(f"SELECT id FROM {{T}} WHERE {K} = NULL"),
    "in-null-only": q(f"SELECT id FROM {{T}} WHERE {K} IN (NULL)"),
    "in-list": q(f"SELECT {ALL} FROM {{T}} WHERE {K} IN ('{THREE}', '{BIG}', '{UNKNOWN}', '{EMPTY}', '{ODD}')"),
    "in-list-null-dup-blank": q(f"SELECT id, {K} FROM {{T}} WHERE {K} IN ('{ONE}', NULL, '{ONE}', '', '{SEVEN}')"),
    "in-subquery-local": q(f"SELECT {ALL} FROM {{T}} WHERE {IN_ALL}"),
    "in-subquery-filtered": q(f"SELECT id, {K} FROM {{T}} WHERE {K} IN (SELECT job_id FROM tags WHERE tag = 'prod')"),
    "in-subquery-and-not-in": q(f"SELECT id, {K} FROM {{T}} WHERE {IN_ALL} AND {K} NOT IN ('{BIG}', '{THREE}')"),
    "two-eq-contradict": q(f"SELECT id FROM {{T}} WHERE {K} = '{ONE}' AND {K} = '{THREE}'"),
    "eq-and-in-same-key": q(f"SELECT id, {K} FROM {{T}} WHERE {K} IN ('{ONE}', '{THREE}') AND {K} = '{THREE}'"),
    "key-and-column-filters": q(
        f"SELECT id, step_number, train_loss FROM {{T}} "
        f"WHERE {K} = '{BIG}' AND step_number BETWEEN 95 AND 105 AND train_loss < 5 AND id LIKE 'ftckpt%'"
    ),
    "count-star-only": q(f"SELECT count(*) FROM {{T}} WHERE {IN_ALL}"),
    "hidden-column-by-name": q(f"SELECT {K}, id, step_number FROM {{T}} WHERE {K} IN ('{ONE}', '{ODD}')"),
    # -- empty sets: no keys at all is zero rows, never an error -----------------------------------------
    "in-subquery-empty": q(f"SELECT {ALL} FROM {{T}} WHERE {K} IN (SELECT id FROM my_jobs WHERE name = 'nope')"),
    "in-subquery-empty-table-count": q(f"SELECT count(*), max(step_number) FROM {{T}} WHERE {K} IN {NONE}"),
    "in-subquery-only-nulls": q(f"SELECT id FROM {{T}} WHERE {K} IN (SELECT id FROM my_jobs WHERE id IS NULL)"),
    "in-subquery-empty-joined-back": q(
        f"SELECT m.name, c.id FROM {{T}} c JOIN my_jobs m ON m.id = c.{K} "
        f"WHERE c.{K} IN (SELECT id FROM my_jobs WHERE name = 'nope')"
    ),
    "in-subquery-empty-materialized-cte": q(
        f"WITH j AS MATERIALIZED (SELECT id, name FROM my_jobs WHERE name LIKE 'nope%') "
        f"SELECT j.name, c.step_number FROM {{T}} c JOIN j ON j.id = c.{K} WHERE c.{K} IN (SELECT id FROM j)"
    ),
    "in-subquery-empty-or-key": q(f"SELECT id, {K} FROM {{T}} WHERE {K} IN {NONE} OR {K} = '{ONE}'"),
    "in-subquery-empty-in-correlated": q(
        f"SELECT m.name, (SELECT count(*) FROM {{T}} c WHERE c.{K} IN (SELECT id FROM no_jobs WHERE id = m.id)) "
        f"FROM my_jobs m"
    ),
    "join-from-empty-table": q(f"SELECT n.name, c.id FROM no_jobs n JOIN {{T}} c ON c.{K} = n.id"),
    "left-join-from-empty-table": q(f"SELECT n.name, c.id FROM no_jobs n LEFT JOIN {{T}} c ON c.{K} = n.id"),
    "left-join-with-empty-in": q(
        f"SELECT m.name, c.id FROM my_jobs m LEFT JOIN {{T}} c ON c.{K} = m.id AND c.{K} IN {NONE}"
    ),
    "tv-empty-scalar-subquery": pair(
        f"SELECT id FROM {VTAB}((SELECT id FROM no_jobs))",
        f"SELECT id FROM {PLAIN} WHERE {K} = (SELECT id FROM no_jobs)",
    ),
    "tv-lateral-from-empty-table": pair(
        f"SELECT n.name, c.id FROM no_jobs n, {VTAB}(n.id) c",
        f"SELECT n.name, c.id FROM no_jobs n, {PLAIN} c WHERE c.{K} = n.id",
    ),
    # -- joins with the local tables --------------------------------------------------------------------
    "join-local-first": q(
        f"SELECT m.name, c.id, c.step_number, c.train_loss FROM my_jobs m JOIN {{T}} c ON c.{K} = m.id"
    ),
    "join-local-second": q(
        f"SELECT m.name, c.id, c.step_number, c.train_loss FROM {{T}} c JOIN my_jobs m ON m.id = c.{K}"
    ),
    "join-comma-where": q(
        f"SELECT m.name, c.id FROM my_jobs m, {{T}} c WHERE c.{K} = m.id AND c.step_number <= 2 AND m.name <> 'one'"
    ),
    "join-duplicate-keys-count": q(
        f"SELECT m.name, count(*), sum(c.step_number) FROM my_jobs m JOIN {{T}} c ON c.{K} = m.id "
        f"WHERE m.id = '{THREE}' GROUP BY m.name"
    ),
    "join-three-way": q(
        f"SELECT t.tag, m.name, c.id FROM tags t JOIN my_jobs m ON m.id = t.job_id JOIN {{T}} c ON c.{K} = m.id"
    ),
    "left-join": q(f"SELECT m.id, m.name, c.id, c.step_number FROM my_jobs m LEFT JOIN {{T}} c ON c.{K} = m.id"),
    "left-join-extra-on-term": q(
        f"SELECT m.name, c.id FROM my_jobs m LEFT JOIN {{T}} c ON c.{K} = m.id AND c.full_valid_loss IS NOT NULL"
    ),
    "left-join-count": q(
        f"SELECT m.name, count(c.id), max(c.step_number) FROM my_jobs m LEFT JOIN {{T}} c ON c.{K} = m.id "
        f"GROUP BY m.name"
    ),
    "left-join-anti": q(f"SELECT m.id, m.name FROM my_jobs m LEFT JOIN {{T}} c ON c.{K} = m.id WHERE c.id IS NULL"),
    "self-join-next-step": q(
        f"SELECT a.{K}, a.step_number, b.step_number, round(b.train_loss - a.train_loss, 6) FROM {{T}} a "
        f"JOIN {{T}} b ON b.{K} = a.{K} AND b.step_number = a.step_number + 1 WHERE a.{IN_SMALL}"
    ),
    # -- join shapes: stars (3+ tables around the vtab), chains, self-joins -----------------------------
    "star-three-local": q(
        f"SELECT a.name, b.name, d.name, c.id FROM my_jobs a JOIN {{T}} c ON c.{K} = a.id "
        f"JOIN my_jobs b ON b.id = c.{K} JOIN my_jobs d ON d.id = c.{K} WHERE c.step_number < 5"
    ),
    "star-count": q(
        f"SELECT count(*) FROM my_jobs a JOIN {{T}} c ON c.{K} = a.id "
        f"JOIN my_jobs b ON b.id = c.{K} JOIN my_jobs d ON d.id = c.{K}"
    ),
    "star-five-local": q(
        f"SELECT a.name, t.tag, c.id FROM my_jobs a JOIN {{T}} c ON c.{K} = a.id JOIN my_jobs b ON b.id = c.{K} "
        f"JOIN tags t ON t.job_id = c.{K} JOIN my_jobs d ON d.id = c.{K} JOIN tags u ON u.job_id = c.{K} "
        f"WHERE c.step_number <= 3"
    ),
    "star-json-each-twice": q(
        f"SELECT a.name, c.id, j1.key, j2.key FROM my_jobs a JOIN {{T}} c ON c.{K} = a.id, "
        f"json_each(c.metrics) j1, json_each(c.metrics) j2 WHERE a.name IN ('three', 'seven')"
    ),
    "star-with-self-join": q(
        f"SELECT a.name, c.id, c2.id, t.tag FROM my_jobs a JOIN {{T}} c ON c.{K} = a.id "
        f"JOIN {{T}} c2 ON c2.{K} = c.{K} AND c2.step_number = c.step_number + 1 "
        f"JOIN my_jobs b ON b.id = c.{K} JOIN tags t ON t.job_id = c2.{K}"
    ),
    "star-keyed-by-in": q(
        f"SELECT a.name, b.name, t.tag, c.id FROM {{T}} c JOIN my_jobs a ON a.id = c.{K} "
        f"JOIN my_jobs b ON b.id = c.{K} JOIN tags t ON t.job_id = c.{K} WHERE c.{IN_ALL} AND c.step_number < 4"
    ),
    "star-left-joins": q(
        f"SELECT a.name, c.id, b.name, t.tag FROM my_jobs a LEFT JOIN {{T}} c ON c.{K} = a.id "
        f"LEFT JOIN my_jobs b ON b.id = c.{K} LEFT JOIN tags t ON t.job_id = c.{K} "
        f"LEFT JOIN my_jobs d ON d.id = c.{K} WHERE coalesce(c.step_number, 0) < 3"
    ),
    "chain-local-vtab-vtab-local": q(
        f"SELECT t.tag, c.id, c2.id, m.name FROM tags t JOIN {{T}} c ON c.{K} = t.job_id "
        f"JOIN {{T}} c2 ON c2.{K} = c.{K} AND c2.step_number = c.step_number + 1 JOIN my_jobs m ON m.id = c2.{K}"
    ),
    "chain-through-a-subquery": q(
        f"SELECT t.tag, x.job, x.n FROM tags t JOIN (SELECT c.{K} AS job, count(*) AS n FROM my_jobs m "
        f"JOIN {{T}} c ON c.{K} = m.id GROUP BY c.{K}) x ON x.job = t.job_id"
    ),
    "self-join-three-steps": q(
        f"SELECT a.{K}, a.step_number, b.step_number, c.step_number FROM {{T}} a "
        f"JOIN {{T}} b ON b.{K} = a.{K} AND b.step_number = a.step_number + 1 "
        f"JOIN {{T}} c ON c.{K} = b.{K} AND c.step_number = b.step_number + 1 WHERE a.{IN_SMALL}"
    ),
    "self-join-keyed-by-local-table": q(
        f"SELECT m.name, a.id, b.id FROM my_jobs m JOIN {{T}} a ON a.{K} = m.id "
        f"JOIN {{T}} b ON b.{K} = a.{K} AND b.step_number = a.step_number WHERE a.id <> b.id"
    ),
    # -- OR ---------------------------------------------------------------------------------------------
    "or-two-keys": q(f"SELECT id, {K} FROM {{T}} WHERE {K} = '{ONE}' OR {K} = '{THREE}'"),
    "or-multi-index": q(
        f"SELECT id, {K}, step_number FROM {{T}} WHERE ({K} = '{BIG}' AND step_number > 140) OR {K} = '{THREE}'"
    ),
    "or-multi-index-overlap": q(
        f"SELECT id, step_number FROM {{T}} "
        f"WHERE ({K} = '{SEVEN}' AND step_number > 2) OR ({K} = '{SEVEN}' AND step_number < 5)"
    ),
    "or-multi-index-in-and-eq": q(
        f"SELECT id, {K} FROM {{T}} "
        f"WHERE ({K} IN ('{ONE}', '{SEVEN}') AND valid_loss IS NULL) OR ({K} = '{BIG}' AND step_number % 50 = 0)"
    ),
    # -- aggregates -------------------------------------------------------------------------------------
    "group-by": q(
        f"SELECT {K}, count(*), min(step_number), max(step_number), round(avg(train_loss), 6), count(valid_loss), "
        f"count(DISTINCT step_number), min(created_at) FROM {{T}} WHERE {IN_ALL} GROUP BY {K}"
    ),
    "having": q(
        f"SELECT {K}, count(*), round(sum(train_loss), 6) FROM {{T}} WHERE {IN_ALL} GROUP BY {K} HAVING count(*) > 3"
    ),
    "group-by-join-tags": q(
        f"SELECT t.tag, count(*), round(avg(c.full_valid_loss), 6), min(c.train_loss) "
        f"FROM tags t JOIN {{T}} c ON c.{K} = t.job_id GROUP BY t.tag"
    ),
    "aggregate-no-group": q(f"SELECT count(*), max(train_loss), total(step_number) FROM {{T}} WHERE {IN_SMALL}"),
    "group-concat-ordered": q(
        f"SELECT {K}, group_concat(step_number, ',' ORDER BY step_number, id) FROM {{T}} WHERE {IN_SMALL} GROUP BY {K}"
    ),
    # -- window functions -------------------------------------------------------------------------------
    "window-row-number": q(
        f"SELECT {K}, id, step_number, row_number() OVER (PARTITION BY {K} ORDER BY step_number, id) "
        f"FROM {{T}} WHERE {IN_ALL}"
    ),
    "window-rank-ties": q(
        f"SELECT {K}, id, rank() OVER (PARTITION BY {K} ORDER BY step_number), "
        f"dense_rank() OVER (PARTITION BY {K} ORDER BY step_number) FROM {{T}} WHERE {IN_SMALL}"
    ),
    "window-lag": q(
        f"SELECT {K}, id, train_loss, lag(train_loss) OVER (PARTITION BY {K} ORDER BY step_number, id) "
        f"FROM {{T}} WHERE {IN_ALL}"
    ),
    "window-running-min": q(
        f"SELECT id, min(full_valid_loss) OVER (PARTITION BY {K} ORDER BY step_number, id ROWS UNBOUNDED PRECEDING) "
        f"FROM {{T}} WHERE {K} IN ('{BIG}', '{SEVEN}')"
    ),
    "window-count-per-job": q(f"SELECT id, count(*) OVER (PARTITION BY {K}) FROM {{T}} WHERE {IN_ALL}"),
    # -- subqueries -------------------------------------------------------------------------------------
    "correlated-best-checkpoint": q(
        f"SELECT c.{K}, c.id, c.step_number, c.full_valid_loss FROM {{T}} c WHERE c.{IN_ALL} "
        f"AND c.full_valid_loss = (SELECT min(full_valid_loss) FROM {{T}} c2 WHERE c2.{K} = c.{K})"
    ),
    "correlated-scalar-in-select": q(
        f"SELECT m.name, (SELECT count(*) FROM {{T}} c WHERE c.{K} = m.id), "
        f"(SELECT max(step_number) FROM {{T}} c WHERE c.{K} = m.id) FROM my_jobs m"
    ),
    "exists": q(
        f"SELECT m.id, m.name FROM my_jobs m "
        f"WHERE EXISTS (SELECT 1 FROM {{T}} c WHERE c.{K} = m.id AND c.full_valid_loss IS NOT NULL)"
    ),
    "not-exists": q(f"SELECT m.id, m.name FROM my_jobs m WHERE NOT EXISTS (SELECT 1 FROM {{T}} c WHERE c.{K} = m.id)"),
    "subquery-in-from": q(
        f"SELECT job, n FROM (SELECT {K} AS job, count(*) AS n FROM {{T}} WHERE {IN_ALL} GROUP BY {K}) WHERE n > 1"
    ),
    "cte-best": q(
        f"WITH best AS (SELECT {K} AS job, min(full_valid_loss) AS loss FROM {{T}} WHERE {IN_ALL} GROUP BY {K}) "
        f"SELECT best.job, c.step_number FROM best JOIN {{T}} c ON c.{K} = best.job AND c.full_valid_loss = best.loss"
    ),
    "cte-values-keys": q(
        f"WITH ids(x) AS (VALUES ('{ONE}'), ('{SEVEN}'), ('{UNKNOWN}'), (NULL)) "
        f"SELECT ids.x, c.id FROM ids JOIN {{T}} c ON c.{K} = ids.x"
    ),
    # -- set operations, DISTINCT -----------------------------------------------------------------------
    "distinct-keys": q(f"SELECT DISTINCT {K} FROM {{T}} WHERE {IN_ALL}"),
    "distinct-steps": q(f"SELECT DISTINCT step_number FROM {{T}} WHERE {K} = '{SEVEN}'"),
    "union": q(
        f"SELECT {K}, step_number FROM {{T}} WHERE {K} = '{THREE}' "
        f"UNION SELECT {K}, step_number FROM {{T}} WHERE {K} IN ('{THREE}', '{ONE}')"
    ),
    "union-all": q(
        f"SELECT id FROM {{T}} WHERE {K} = '{THREE}' UNION ALL SELECT id FROM {{T}} WHERE {K} IN ('{THREE}', '{ONE}')"
    ),
    "except": q(f"SELECT id FROM {{T}} WHERE {IN_SMALL} EXCEPT SELECT id FROM {{T}} WHERE {K} = '{SEVEN}'"),
    # -- ORDER BY, LIMIT, OFFSET ------------------------------------------------------------------------
    "order-limit-asc": q(
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}' ORDER BY step_number, id LIMIT 10", ordered=True
    ),
    "order-limit-offset-desc": q(
        f"SELECT id, train_loss FROM {{T}} WHERE {K} = '{BIG}' ORDER BY train_loss DESC, id LIMIT 5 OFFSET 3",
        ordered=True,
    ),
    "order-offset-page-boundary": q(
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}' ORDER BY step_number DESC, id LIMIT 10 OFFSET 95",
        ordered=True,
    ),
    "order-across-keys": q(
        f"SELECT {K}, id, created_at FROM {{T}} WHERE {IN_ALL} ORDER BY created_at DESC, id LIMIT 20 OFFSET 5",
        ordered=True,
    ),
    "order-nulls-first": q(
        f"SELECT id, valid_loss FROM {{T}} WHERE {IN_SMALL} ORDER BY valid_loss NULLS FIRST, id", ordered=True
    ),
    "order-by-hidden-column": q(
        f"SELECT {K}, id FROM {{T}} WHERE {K} IN ('{SEVEN}', '{ONE}', '{THREE}') ORDER BY {K} DESC, step_number, id",
        ordered=True,
    ),
    "order-join": q(
        f"SELECT m.name, c.step_number FROM my_jobs m JOIN {{T}} c ON c.{K} = m.id "
        f"ORDER BY m.name, c.step_number DESC, c.id LIMIT 12 OFFSET 2",
        ordered=True,
    ),
    "limit-zero": q(f"SELECT id FROM {{T}} WHERE {K} = '{BIG}' LIMIT 0"),
    "limit-beyond-rows": q(f"SELECT id FROM {{T}} WHERE {K} = '{BIG}' LIMIT 1000"),
    "offset-beyond-rows": q(f"SELECT id FROM {{T}} WHERE {K} = '{THREE}' LIMIT 5 OFFSET 10"),
    "limit-no-order": limited(
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}' LIMIT 7",
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}'",
    ),
    "limit-offset-no-order-page-boundary": limited(
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}' LIMIT 10 OFFSET 95",
        f"SELECT id, step_number FROM {{T}} WHERE {K} = '{BIG}'",
    ),
    "limit-offset-no-order-small": limited(
        f"SELECT id FROM {{T}} WHERE {K} = '{BIG}' LIMIT 3 OFFSET 2",
        f"SELECT id FROM {{T}} WHERE {K} = '{BIG}'",
    ),
    "limit-in-list-no-order": limited(
        f"SELECT {K}, id FROM {{T}} WHERE {K} IN ('{THREE}', '{SEVEN}', '{BIG}') LIMIT 4",
        f"SELECT {K}, id FROM {{T}} WHERE {K} IN ('{THREE}', '{SEVEN}', '{BIG}')",
    ),
    "limit-with-filter-no-order": limited(
        f"SELECT id FROM {{T}} WHERE {K} = '{BIG}' AND step_number > 120 LIMIT 5",
        f"SELECT id FROM {{T}} WHERE {K} = '{BIG}' AND step_number > 120",
    ),
    # -- JSON, NULL metrics, expressions ----------------------------------------------------------------
    "json-each": q(f"SELECT c.id, j.key, j.value, j.type FROM {{T}} c, json_each(c.metrics) j WHERE c.{IN_ALL}"),
    "json-each-group": q(
        f"SELECT j.key, count(*), round(avg(j.value), 6) FROM {{T}} c, json_each(c.metrics) j "
        f"WHERE c.{IN_ALL} GROUP BY j.key"
    ),
    "json-extract": q(
        f"SELECT id, json_extract(metrics, '$.full_valid_loss'), metrics ->> '$.step', json_valid(metrics) "
        f"FROM {{T}} WHERE {IN_SMALL}"
    ),
    "json-agrees-with-columns": q(
        f"SELECT id FROM {{T}} WHERE {IN_ALL} AND (json_extract(metrics, '$.train_loss') IS NOT train_loss "
        f"OR json_extract(metrics, '$.valid_loss') IS NOT valid_loss OR json_extract(metrics, '$.step') <> step_number)"
    ),
    "coalesce-missing-metrics": q(
        f"SELECT id, coalesce(full_valid_loss, valid_loss, train_loss, -1), "
        f"coalesce(full_valid_mean_token_accuracy, valid_mean_token_accuracy, -1) FROM {{T}} WHERE {IN_ALL}"
    ),
    "case-metric-kind": q(
        f"SELECT {K}, CASE WHEN full_valid_loss IS NOT NULL THEN 'full' WHEN valid_loss IS NOT NULL THEN 'valid' "
        f"WHEN train_loss IS NOT NULL THEN 'train' ELSE 'none' END AS kind, count(*) FROM {{T}} "
        f"WHERE {IN_ALL} GROUP BY 1, 2"
    ),
    "null-metric-filters": q(
        f"SELECT id FROM {{T}} WHERE {IN_ALL} AND valid_loss IS NULL AND (train_loss IS NULL OR train_loss > 1)"
    ),
    "arithmetic-on-metrics": q(
        f"SELECT id, round(train_loss * 2 + 1, 6), round(full_valid_loss - valid_loss, 6), step_number / 2 "
        f"FROM {{T}} WHERE {IN_SMALL}"
    ),
    # -- table-valued syntax (no plain spelling: the plain side writes the key in WHERE) ----------------
    "tv-literal": pair(
        f"SELECT id, step_number FROM {VTAB}('{SEVEN}')", f"SELECT id, step_number FROM {PLAIN} WHERE {K} = '{SEVEN}'"
    ),
    "tv-select-star": pair(f"SELECT * FROM {VTAB}('{THREE}')", f"SELECT {VISIBLE} FROM {PLAIN} WHERE {K} = '{THREE}'"),
    "tv-two-pages-with-where": pair(
        f"SELECT {K}, id FROM {VTAB}('{BIG}') WHERE step_number > 90",
        f"SELECT {K}, id FROM {PLAIN} WHERE {K} = '{BIG}' AND step_number > 90",
    ),
    "tv-null": pair(f"SELECT id FROM {VTAB}(NULL)", f"SELECT id FROM {PLAIN} WHERE {K} = NULL"),
    "tv-unknown": pair(f"SELECT id FROM {VTAB}('{UNKNOWN}')", f"SELECT id FROM {PLAIN} WHERE {K} = '{UNKNOWN}'"),
    "tv-scalar-subquery-arg": pair(
        f"SELECT id FROM {VTAB}((SELECT id FROM my_jobs WHERE name = 'seven'))",
        f"SELECT id FROM {PLAIN} WHERE {K} = (SELECT id FROM my_jobs WHERE name = 'seven')",
    ),
    "tv-lateral": pair(
        f"SELECT m.name, c.id, c.train_loss FROM my_jobs m, {VTAB}(m.id) c",
        f"SELECT m.name, c.id, c.train_loss FROM my_jobs m, {PLAIN} c WHERE c.{K} = m.id",
    ),
    "tv-lateral-left": pair(
        f"SELECT m.name, c.id FROM my_jobs m LEFT JOIN {VTAB}(m.id) c",
        f"SELECT m.name, c.id FROM my_jobs m LEFT JOIN {PLAIN} c ON c.{K} = m.id",
    ),
    "tv-lateral-group": pair(
        f"SELECT m.name, count(*), round(avg(c.train_loss), 6) FROM my_jobs m, {VTAB}(m.id) c GROUP BY m.name",
        f"SELECT m.name, count(*), round(avg(c.train_loss), 6) FROM my_jobs m, {PLAIN} c "
        f"WHERE c.{K} = m.id GROUP BY m.name",
    ),
    "tv-lateral-ordered-limit": pair(
        f"SELECT m.name, c.step_number FROM my_jobs m, {VTAB}(m.id) c ORDER BY c.created_at, c.id LIMIT 15 OFFSET 140",
        f"SELECT m.name, c.step_number FROM my_jobs m, {PLAIN} c WHERE c.{K} = m.id "
        f"ORDER BY c.created_at, c.id LIMIT 15 OFFSET 140",
        ordered=True,
    ),
    # JSON integers in REAL columns must still divide and type like REAL.
    "real-column-of-json-integers": q(
        f"SELECT id, train_loss / 2, typeof(train_loss), typeof(full_valid_loss) FROM {{T}} WHERE {K} = '{INTS}'"
    ),
}


def _sort_key(row: Sequence[Any]) -> tuple[tuple[int, Any], ...]:
    """Orders rows of mixed types (None, numbers, text, blobs) deterministically; 1 and 1.0 sort alike."""
    out = []
    for value in row:
        if value is None:
            out.append((0, 0))
        elif isinstance(value, (int, float)):
            out.append((1, float(value)))
        elif isinstance(value, str):
            out.append((2, value))
        else:
            out.append((3, bytes(value)))
    return tuple(out)


def _rows(db: apsw.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(sql).fetchall()]


def _checkpoint_rows(api: FakeOpenAI) -> list[tuple[Any, ...]]:
    """The fake's own checkpoints as rows, computed without the package (JSON as the package writes it)."""
    rows = []
    for job_id, checkpoints in api.state.checkpoints.items():
        for c in checkpoints:
            metrics = c.get("metrics")
            values = {
                "id": c["id"],
                "created_at": c["created_at"],
                "fine_tuned_model_checkpoint": c["fine_tuned_model_checkpoint"],
                "step_number": c["step_number"],
                "metrics": None if metrics is None else json.dumps(metrics, separators=(",", ":")),
                "object": c["object"],
                **{name: (metrics or {}).get(name) for name in METRICS},
                "fine_tuning_job_id": job_id,
            }
            rows.append(tuple(values[name] for name, _ in COLUMNS))
    return rows


@pytest.fixture(scope="module")
def api() -> Iterator[FakeOpenAI]:
    """The fake API: jobs of 0, 1, 2, 3, 7+2 and 150 checkpoints, and one of integer metrics (nothing writes)."""
    with FakeOpenAI(seed=7) as fake:
        for job_id, count in COUNTS.items():
            fake.add_job(job_id)
            fake.add_checkpoints(job_id, count)
        # SEVEN also has a checkpoint whose metrics dict is empty and a second checkpoint at step 3 (rank ties).
        # add_checkpoint always adds a "step" metric; it returns the stored dict, so emptying it empties the answer.
        fake.add_checkpoint(SEVEN, 8, {})["metrics"] = {}
        fake.add_checkpoint(SEVEN, 3, {"train_loss": 0.9, "full_valid_loss": 0.95})
        # INTS has metrics sent as JSON integers, which the API may do for whole numbers.
        fake.add_job(INTS)
        fake.add_checkpoint(INTS, 1, {"train_loss": 1, "full_valid_loss": 0})
        yield fake


@pytest.fixture(scope="module")
def db(api: FakeOpenAI) -> Iterator[apsw.Connection]:
    """One connection with the virtual tables, ``plain_checkpoints`` (the fake's data) and the local tables.

    ``my_jobs`` and ``tags`` hold job ids (with duplicates, NULLs and unknown ids); ``no_jobs`` is empty.
    """
    connection = apsw.Connection(":memory:", statementcachesize=0)
    with pytest.MonkeyPatch.context() as env:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
            env.delenv(name, raising=False)
        openai_vtab.register(connection, api_key=api.api_key, base_url=api.base_url)
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    connection.execute(f"CREATE TABLE {PLAIN}({columns})")
    connection.executemany(f"INSERT INTO {PLAIN} VALUES ({', '.join('?' * len(COLUMNS))})", _checkpoint_rows(api))
    connection.execute("CREATE TABLE my_jobs(id TEXT, name TEXT)")
    connection.executemany("INSERT INTO my_jobs VALUES (?, ?)", MY_JOBS)
    connection.execute("CREATE TABLE no_jobs(id TEXT, name TEXT)")
    connection.execute("CREATE TABLE tags(job_id TEXT, tag TEXT)")
    connection.executemany("INSERT INTO tags VALUES (?, ?)", TAGS)
    yield connection
    connection.close()


def test_baseline_is_the_fakes_data(api: FakeOpenAI, db: apsw.Connection) -> None:
    """The plain table holds every checkpoint of the fake, and the vtab returns exactly those rows."""
    expected = sum(COUNTS.values()) + 2 + 1
    assert sum(len(c) for c in api.state.checkpoints.values()) == expected
    assert _rows(db, f"SELECT count(*) FROM {PLAIN}") == [(expected,)]
    every_job = ", ".join(f"'{job}'" for job in [*api.state.jobs, UNKNOWN])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", openai_vtab.UnknownKeyWarning)
        vtab = _rows(db, f"SELECT {ALL} FROM {VTAB} WHERE {K} IN ({every_job})")
    plain = _rows(db, f"SELECT {ALL} FROM {PLAIN}")
    assert sorted(vtab, key=_sort_key) == sorted(plain, key=_sort_key)
    # The copy the package itself would make (INSERT ... SELECT) is the same table.
    db.execute(f"CREATE TEMP TABLE copied AS SELECT {ALL} FROM {VTAB} WHERE {K} IN ({every_job})")
    try:
        copied = _rows(db, f"SELECT {ALL} FROM temp.copied")
    finally:
        db.execute("DROP TABLE temp.copied")
    assert sorted(copied, key=_sort_key) == sorted(plain, key=_sort_key)


def test_enough_queries() -> None:
    """The suite keeps its promised breadth."""
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", [pytest.param(c, id=i) for i, c in CASES.items()])
def test_same_rows(db: apsw.Connection, case: Case) -> None:
    """The vtab and the plain table give the same rows for the same SQL."""
    vtab = _rows(db, case.vtab_sql)
    plain = _rows(db, case.plain_sql)
    if case.mode == "ordered":
        assert vtab == plain
    elif case.mode == "multiset":
        assert sorted(vtab, key=_sort_key) == sorted(plain, key=_sort_key)
    else:
        assert len(vtab) == len(plain)
        full = Counter(_rows(db, case.full_sql))
        extra = Counter(vtab) - full
        assert not extra, f"rows not in the unlimited result: {sorted(extra, key=_sort_key)}"


def test_vtab_never_claims_an_order(db: apsw.Connection) -> None:
    """Rows of an IN list come in no promised order, so SQLite must sort them itself, and does so correctly."""
    where = f"WHERE {K} IN ('{SEVEN}', '{THREE}', '{BIG}')"
    unordered = _rows(db, f"SELECT {K}, id, step_number FROM {VTAB} {where}")
    plain = _rows(db, f"SELECT {K}, id, step_number FROM {PLAIN} {where}")
    assert sorted(unordered, key=_sort_key) == sorted(plain, key=_sort_key)
    for order in ("step_number, id", "created_at DESC", f"{K}, step_number DESC, id", "id"):
        sql = f"SELECT {K}, id, step_number FROM {{T}} {where} ORDER BY {order}"
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql.replace("{T}", VTAB)))
        assert "USE TEMP B-TREE FOR ORDER BY" in plan, (order, plan)
        assert _rows(db, sql.replace("{T}", VTAB)) == _rows(db, sql.replace("{T}", PLAIN))
