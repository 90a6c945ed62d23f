"""The admin login locks out password guessing per (username, client address), visible and resettable by staff."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "the-right-password-1"
PROXY = "127.0.0.1"  # nginx on the same machine: trusted, forwards for the real client


@pytest.fixture(autouse=True)
def _lockout_settings(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1"]
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def staff_users():
    alice = User.objects.create_user("alice", password=PASSWORD, is_staff=True)
    bob = User.objects.create_user("bob", password=PASSWORD, is_staff=True)
    return alice, bob


def login(username: str, password: str, *, client_address: str, via_proxy: bool = True) -> tuple[Client, object]:
    client = Client()
    extra = (
        {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client_address} if via_proxy else {"REMOTE_ADDR": client_address}
    )
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra)
    return client, response


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_after_the_limit_even_the_right_password_is_refused_with_a_clear_page(staff_users):
    for _ in range(2):
        client, response = login("alice", "guess", client_address="198.51.100.1")
        assert response.status_code == 200 and not logged_in(client)  # the login form again, with its error
    _, third = login("alice", "guess", client_address="198.51.100.1")
    assert third.status_code == 429
    client, right = login("alice", PASSWORD, client_address="198.51.100.1")
    assert right.status_code == 429
    page = right.content.decode()
    assert "Too many failed logins" in page and "alice" in page and "reset" in page
    assert not logged_in(client)


def test_someone_elses_guesses_from_the_same_address_do_not_lock_out_a_colleague(staff_users):
    """Two staff members behind the same proxy (or NAT): the guesser locks out only the account guessed at."""
    for _ in range(5):
        login("alice", "guess", client_address="198.51.100.1")
    assert login("alice", PASSWORD, client_address="198.51.100.1")[1].status_code == 429
    client, response = login("bob", PASSWORD, client_address="198.51.100.1")
    assert response.status_code == 302 and logged_in(client)


def test_the_account_itself_still_logs_in_from_another_address(staff_users):
    for _ in range(3):
        login("alice", "guess", client_address="198.51.100.1")
    client, response = login("alice", PASSWORD, client_address="203.0.113.20")
    assert response.status_code == 302 and logged_in(client)


def test_addresses_follow_the_proxy_rules(staff_users):
    """An X-Forwarded-For from a peer outside TRUSTED_PROXIES is not believed: the peer's own address counts."""
    for _ in range(3):  # the attacker at 203.0.113.66 pretends to forward for alice's office
        Client().post(
            LOGIN,
            {"username": "alice", "password": "guess"},
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR="198.51.100.1",
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.66"}
    client, response = login("alice", PASSWORD, client_address="198.51.100.1")
    assert response.status_code == 302 and logged_in(client)


def test_a_successful_login_forgets_earlier_failures(staff_users):
    for _ in range(2):
        login("alice", "guess", client_address="198.51.100.1")
    assert login("alice", PASSWORD, client_address="198.51.100.1")[1].status_code == 302
    for _ in range(2):
        login("alice", "guess", client_address="198.51.100.1")
    assert login("alice", PASSWORD, client_address="198.51.100.1")[1].status_code == 302


def test_staff_see_the_lockout_in_the_admin_and_reset_it(staff_users):
    for _ in range(3):
        login("alice", "guess", client_address="198.51.100.1")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="x"))
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "alice" in listing.content.decode() and "198.51.100.1" in listing.content.decode()
    attempt = AccessAttempt.objects.get(username="alice")
    assert attempt.failures_since_start == 3
    deleted = admin.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )
    assert deleted.status_code == 302
    client, response = login("alice", PASSWORD, client_address="198.51.100.1")
    assert response.status_code == 302 and logged_in(client)


def test_unknown_usernames_are_counted_and_locked_like_real_ones(db):
    for _ in range(3):
        login("nobody", "guess", client_address="198.51.100.1")
    assert login("nobody", "guess", client_address="198.51.100.1")[1].status_code == 429


def test_daemon_keys_and_staff_sessions_on_the_api_are_untouched_by_the_lockout(staff_users, settings):
    """The API authenticates keys and sessions itself; a locked-out address still reaches it."""
    from supervisors.services.world import create_daemon_key
    from tests.factories import make_daemon

    for _ in range(3):
        login("alice", "guess", client_address="127.0.0.1", via_proxy=False)
    key = create_daemon_key(make_daemon("alpha").id).raw
    response = Client().get("/api/v1/daemons/me/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert Client().get("/api/v1/daemons/me/", HTTP_AUTHORIZATION="Bearer mks_bad_bad").status_code == 401
