"""dmarket.jobs.conf: the allowlist of Spark properties, and doc/spark.md in step with it."""

import re
from pathlib import Path

import pytest

from dmarket.jobs.conf import (ALLOWED_KEYS, ALLOWED_PREFIXES, MARKET_FIELDS, BadConf, allowed,
                               conf_check, refusal)

DOC = (Path(__file__).resolve().parents[3] / "doc" / "spark.md").read_text()
TOKEN = re.compile(r"`([^`]+)`")


def part(start, end):
    """The keys in backticks between two phrases of doc/spark.md's section."""
    section = DOC[DOC.index("## Spark properties a job may set"):]
    text = section[section.index(start):section.index(end)]
    return [t for t in TOKEN.findall(text) if t.startswith(("spark.", "*"))]


def test_the_doc_lists_exactly_the_allowed_keys():
    assert set(part("Allowed, by exact key:", "Allowed, by prefix")) == ALLOWED_KEYS


def test_the_doc_lists_exactly_the_allowed_prefixes_and_its_examples_are_allowed():
    keys = part("Allowed, by prefix", "Set by the market")
    assert {k for k in keys if k.endswith(".")} == set(ALLOWED_PREFIXES)
    examples = [k for k in keys if not k.endswith(".")]
    assert examples and [k for k in examples if not allowed(k)] == []


def test_the_doc_lists_exactly_the_properties_set_from_the_jobs_fields():
    assert set(part("Set by the market", "Refused, and why")) == {k for k, _, _ in MARKET_FIELDS}


def test_what_the_doc_says_is_refused_is_refused():
    keys = part("| properties | why |", "What the list is, and is not")
    assert len(keys) > 50
    for key in (k for k in keys if not k.endswith(".")):
        example = ("spark.x" + key[1:] if key.startswith("*") else key).replace("*", "x")
        assert refusal(example) and not allowed(example), example


def test_conf_check_returns_a_copy_and_raises_a_value_error_naming_the_key():
    conf = {"spark.sql.shuffle.partitions": "8"}
    assert conf_check(conf) == conf and conf_check(conf) is not conf
    with pytest.raises(ValueError) as raised:
        conf_check({"spark.sql.shuffle.partitions": "8", "spark.executorEnv.LD_PRELOAD": "x"})
    assert isinstance(raised.value, BadConf)
    assert raised.value.key == "spark.executorEnv.LD_PRELOAD"
    assert str(raised.value).startswith("spark.executorEnv.LD_PRELOAD: ")


@pytest.mark.parametrize("conf, message", [
    ([], "give an object of Spark properties and their values"),
    ({1: "x"}, "1: not a Spark property: give spark. and then letters, digits, '.', '_' or '-' "
               "(at most 200)"),
    ({"spark.sql.x": 8}, "spark.sql.x: give the value as a string"),
    ({"spark.sql.x": "x" * 1001}, "spark.sql.x: the value is longer than 1000 characters"),
    ({"spark.sql.x": "\x00"}, "spark.sql.x: the value contains a control character"),
])
def test_conf_check_on_its_own(conf, message):
    with pytest.raises(BadConf) as raised:
        conf_check(conf)
    assert str(raised.value) == message


@pytest.mark.parametrize("key", sorted(ALLOWED_KEYS))
def test_no_allowed_key_is_one_the_market_sets(key):
    # The market's own properties (dmarket.cluster.spark.submit_argv, the properties file of
    # dmarket.cluster.security) are never the job's to set.
    assert not key.startswith(("spark.eventLog.", "spark.ui.", "spark.executorEnv.",
                               "spark.authenticate", "spark.network.crypto.",
                               "spark.io.encryption.", "spark.dmarket."))
    assert key not in ("spark.cores.max", "spark.driver.extraJavaOptions", "spark.driver.host")
