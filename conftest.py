"""For every test, dmarket's and the client's."""

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """pytest-django's, and the live server's request threads close their database connection
    after each request (CONN_MAX_AGE 0; 60 outside the tests). Such a thread lives as long as
    its client keeps the HTTP connection alive, past its test if the client is never closed,
    and its database connection then kept the test database from being dropped at the end
    ("being accessed by other users")."""
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
