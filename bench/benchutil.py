"""What the bench scripts share: a free port and a fresh database of their own."""

import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url, name):
    """A fresh database `name` on DATABASE_URL's server: never the one it names, which may be
    someone's real one. Returns its URL."""
    import dj_database_url
    import psycopg

    c = dj_database_url.parse(url)
    with psycopg.connect(host=c["HOST"], port=c["PORT"] or 5432, user=c["USER"],
                         password=c["PASSWORD"], dbname="postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    password = f":{c['PASSWORD']}" if c["PASSWORD"] else ""
    return f"postgres://{c['USER']}{password}@{c['HOST']}:{c['PORT'] or 5432}/{name}"
