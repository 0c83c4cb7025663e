"""Operators see every environment, with its requirements and why a build failed; they may
set a failed one BUILDING to have it built again, and add none by hand."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dmarket.envs.models import Environment


@pytest.fixture
def admin_client(db):
    root = get_user_model().objects.create_superuser("root", "r@example.org", "a long pw 1")
    client = Client()
    client.force_login(root)
    return client


def test_environments_are_listed_and_a_failed_one_can_be_built_again(admin_client):
    env = Environment.objects.create(key="a" * 64, requirements="numpy==2.4.6\n",
                                     python="3.11", platform="linux-x86_64",
                                     status=Environment.FAILED, error="pip exited with 1")

    listing = admin_client.get("/admin/envs/environment/")
    assert listing.status_code == 200
    assert "a" * 64 in listing.content.decode()
    page = admin_client.get(f"/admin/envs/environment/{env.pk}/change/")
    assert "numpy==2.4.6" in page.content.decode()
    assert "pip exited with 1" in page.content.decode()

    response = admin_client.post(f"/admin/envs/environment/{env.pk}/change/",
                                 {"status": "BUILDING"})
    assert response.status_code == 302
    env.refresh_from_db()
    assert (env.status, env.requirements) == ("BUILDING", "numpy==2.4.6\n")
    assert admin_client.get("/admin/envs/environment/add/").status_code == 403
