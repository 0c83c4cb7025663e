"""Requirements are normalised (the same set written differently is one environment) and
refused where pip would read the builder's files or fetch from anywhere."""

import pytest

from dmarket.envs.services import BadRequirements, env_key, requirements_normalize


def test_the_same_set_written_differently_is_the_same_text():
    a = requirements_normalize("Requests>=2.0\n# a comment\n\nnumpy==2.4.6  # pinned\n")
    b = requirements_normalize("numpy ==2.4.6\nrequests >= 2.0\n")
    assert a == b == "numpy==2.4.6\nrequests>=2.0\n"
    assert env_key(a, "3.11", "linux-x86_64") != env_key(a, "3.12", "linux-x86_64")


def test_extras_and_markers_are_kept():
    assert requirements_normalize("Foo_Bar[B,a]>1,<3; python_version >= '3.8'\n") == \
        'foo-bar[a,b]<3,>1; python_version >= "3.8"\n'


@pytest.mark.parametrize("text,message", [
    ("-r /etc/passwd\n", "line 1: '-r' is a pip option; only package requirements are allowed "
                         "(the index is the market's)"),
    ("numpy\n--index-url http://evil.example/simple\n",
     "line 2: '--index-url' is a pip option; only package requirements are allowed (the index "
     "is the market's)"),
    ("-e git+https://example.org/x.git#egg=x\n", "line 1: '-e' is a pip option; only package "
                                                 "requirements are allowed (the index is the "
                                                 "market's)"),
    ("x @ file:///etc/shadow\n", "line 1: 'x @ file:///etc/shadow' names a URL or path; only "
                                 "package names and versions from the index are allowed"),
    ("# nothing\n\n", "names no package"),
    ("foo===/../../../../usr/lib/x\n", "line 1: '\\', '${' and '===' are not allowed"),
    ("foo==1.0 \\\n--index-url http://evil.example/\n",
     "line 1: '\\', '${' and '===' are not allowed"),
    ("foo==${SECRET_KEY}\n", "line 1: '\\', '${' and '===' are not allowed"),
])
def test_options_urls_and_empty_sets_are_refused(text, message):
    with pytest.raises(BadRequirements) as e:
        requirements_normalize(text)
    assert str(e.value) == message


def test_a_line_that_is_no_requirement_names_its_line():
    with pytest.raises(BadRequirements) as e:
        requirements_normalize("numpy\nnot a requirement!\n")
    assert str(e.value).startswith("line 2: 'not a requirement!' is not a requirement")


def test_too_many(settings):
    settings.DMARKET_ENV_MAX_REQUIREMENTS = 2
    with pytest.raises(BadRequirements) as e:
        requirements_normalize("a\nb\nc\n")
    assert str(e.value) == "at most 2 requirements"
