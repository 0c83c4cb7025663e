"""GET /api/files/: the latest version of each file, by name; ?pattern= and ?owner=."""

from dmarket.conftest import client_for

from .util import ANONYMOUS, uploaded, version_json


def page(results):
    return {"count": len(results), "next": None, "previous": None, "results": results}


def test_empty(alice):
    response = client_for(alice).get("/api/files/")

    assert response.status_code == 200
    assert response.json() == page([])


def test_latest_version_of_each_file_sorted_by_name(alice, bob):
    uploaded(alice, "b.py", b"1")
    latest_b = uploaded(alice, "b.py", b"22")
    a = uploaded(alice, "a/data.zip", b"333", public="true")
    uploaded(bob, "bobs.py", b"x")

    response = client_for(alice).get("/api/files/")

    assert response.status_code == 200
    assert response.json() == page([version_json(a), version_json(latest_b)])


def test_pattern(alice):
    uploaded(alice, "mnist/train.py", b"1")
    uploaded(alice, "mnist/data/x.zip", b"1")
    uploaded(alice, "other.py", b"1")
    client = client_for(alice)

    def names(pattern):
        response = client.get("/api/files/", {"pattern": pattern})
        assert response.status_code == 200
        return [r["name"] for r in response.json()["results"]]

    assert names("mnist/*") == ["mnist/data/x.zip", "mnist/train.py"]
    assert names("*.py") == ["mnist/train.py", "other.py"]
    assert names("other.p?") == ["other.py"]
    assert names("other") == []
    # Characters of regular expressions are only themselves.
    assert names("other.p[y]") == []
    assert names("......py") == []


def test_a_file_whose_versions_are_all_deleted_is_not_listed(alice):
    uploaded(alice, "gone.py", b"1")
    client_for(alice).delete("/api/files/gone.py")

    assert client_for(alice).get("/api/files/").json() == page([])


def test_another_users_public_files_only(alice, bob):
    uploaded(alice, "private.py", b"1")
    shared = uploaded(alice, "shared.py", b"1", public="true")

    response = client_for(bob).get("/api/files/", {"owner": "alice"})

    assert response.status_code == 200
    assert response.json() == page([version_json(shared, uri="dmarket://~alice/shared.py@1")])


def test_operators_see_private_files_of_anyone(alice, staff):
    uploaded(alice, "private.py", b"1")

    response = client_for(staff).get("/api/files/", {"owner": "alice"})

    assert [r["name"] for r in response.json()["results"]] == ["private.py"]


def test_anonymous_is_401(db):
    response = client_for().get("/api/files/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_list_queries_do_not_grow_with_files(alice, django_assert_num_queries):
    client = client_for(alice)
    uploaded(alice, "f0.py", b"0")
    uploaded(alice, "f0.py", b"00")
    client.get("/api/files/")  # stamps the token's last use, which waits a while after

    # The token and the page (each file's latest version, its file and owner joined; no
    # count while they fit on the first page).
    with django_assert_num_queries(2):
        few = client.get("/api/files/")
    for i in range(1, 6):
        uploaded(alice, f"f{i}.py", b"1")
        uploaded(alice, f"f{i}.py", b"22", public="true")
    with django_assert_num_queries(2):
        many = client.get("/api/files/")

    assert [r["version"] for r in few.json()["results"]] == [2]
    assert [(r["name"], r["version"]) for r in many.json()["results"]] == [
        (f"f{i}.py", 2) for i in range(6)]


def test_another_users_list_queries_do_not_grow_with_files(alice, bob,
                                                           django_assert_num_queries):
    client = client_for(bob)
    uploaded(alice, "f0.py", b"0", public="true")
    client.get("/api/files/", {"owner": "alice"})  # stamps the token's last use

    # The token and the page: another's public files as cheaply as one's own.
    with django_assert_num_queries(2):
        few = client.get("/api/files/", {"owner": "alice"})
    for i in range(1, 6):
        uploaded(alice, f"f{i}.py", b"1", public="true")
    with django_assert_num_queries(2):
        many = client.get("/api/files/", {"owner": "alice"})

    assert few.json()["count"] == 1
    assert [r["uri"] for r in many.json()["results"]] == [
        f"dmarket://~alice/f{i}.py@1" for i in range(6)]
