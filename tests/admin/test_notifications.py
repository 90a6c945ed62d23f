"""Notifications in the admin: subscriptions set up by staff, deliveries and dead letters they can act on.

What staff notice: a subscription with a bad URL, no target or an unknown
contract is a form error and nothing is saved; "Send a test event" queues a
test delivery; the deliveries list shows status, attempts, next attempt and
last error, the dead letters by a filter, and Retry / Discard act on them
(only for staff allowed to change deliveries).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from supervisors.models import Delivery, Subscription
from tests.admin.conftest import staff_with
from tests.factories import make_contract

pytestmark = pytest.mark.django_db

ADD = reverse("admin:supervisors_subscription_add")
SUBSCRIPTIONS = reverse("admin:supervisors_subscription_changelist")
DELIVERIES = reverse("admin:supervisors_delivery_changelist")


def form(**fields):
    data = {"name": "on call", "enabled": "on", "webhook_url": "", "email": "", "secret": "s3cret", "contract_ids": ""}
    data.update(fields)
    return data


def test_staff_create_a_webhook_subscription_for_some_types_and_contracts(admin_client):
    contract = make_contract("Landing page")
    response = admin_client.post(
        ADD,
        form(
            webhook_url="https://hooks.example.com/makima",
            event_types=["question_asked", "supervisor_blocked"],
            contract_ids=f"  {contract.pk}  \n\n",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    subscription = Subscription.objects.get()
    assert subscription.event_types == ["question_asked", "supervisor_blocked"]
    assert subscription.contract_ids == [str(contract.pk)]
    assert subscription.wants("question_asked", contract.pk) and not subscription.wants("stale", contract.pk)
    assert not subscription.wants("question_asked", uuid.uuid4())


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"webhook_url": "ftp://files.example.com/x"}, "Only http:// and https:// URLs."),
        ({"webhook_url": "file:///etc/passwd"}, "Enter a valid URL."),
        ({}, "Give a webhook URL or an email address"),
        ({"webhook_url": "https://a.example.com", "email": "a@example.com"}, "Give a webhook URL or an email"),
        ({"email": "a@example.com", "contract_ids": "not-an-id"}, "Not contract ids: not-an-id."),
        ({"email": "a@example.com", "contract_ids": str(uuid.UUID(int=7))}, "No such contract"),
        ({"email": "a@example.com", "event_types": ["nonsense"]}, "Select a valid choice"),
        ({"email": "a@example.com", "name": "a\x00b"}, "Null characters are not allowed"),
    ],
)
def test_a_bad_subscription_is_a_form_error_and_nothing_is_saved(admin_client, fields, error):
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Subscription.objects.exists()


def test_send_a_test_event_queues_a_test_delivery_shown_in_deliveries(admin_client):
    subscription = Subscription.objects.create(name="hook", webhook_url="http://127.0.0.1:9/x")
    response = admin_client.post(
        SUBSCRIPTIONS, {"action": "send_test_event", "_selected_action": [subscription.pk]}, follow=True
    )
    assert "Test event queued for 1 subscription(s)" in response.content.decode()
    delivery = Delivery.objects.get()
    assert (delivery.event_type, delivery.status, delivery.payload["type"]) == ("test", "pending", "test")
    page = admin_client.get(DELIVERIES).content.decode()
    assert "Pending" in page and "hook" in page


def dead_letter(subscription: Subscription, **fields) -> Delivery:
    now = timezone.now()
    values = {
        "subscription": subscription,
        "event_id": uuid.uuid4(),
        "event_type": "question_asked",
        "order_key": "k",
        "payload": {"id": "x", "contract": {"name": "Landing page"}},
        "status": "dead",
        "attempts": 9,
        "last_error": "HTTP 503",
        "give_up_at": now - timedelta(seconds=1),
    }
    values.update(fields)
    return Delivery.objects.create(**values)


def test_dead_letters_are_listed_with_their_error_and_staff_retry_or_discard_them(admin_client):
    subscription = Subscription.objects.create(name="hook", webhook_url="http://127.0.0.1:9/x")
    dead = dead_letter(subscription)
    other = dead_letter(subscription, status="dead", last_error="ConnectionRefusedError")
    delivered = dead_letter(subscription, status="delivered", last_error="")
    page = admin_client.get(DELIVERIES, {"status__exact": "dead"}).content.decode()
    assert "HTTP 503" in page and "Landing page" in page and "Dead letter" in page
    assert admin_client.get(reverse("admin:supervisors_delivery_change", args=[dead.pk])).status_code == 200

    admin_client.post(DELIVERIES, {"action": "retry", "_selected_action": [dead.pk, delivered.pk]})
    dead.refresh_from_db()
    assert dead.status == "pending" and dead.next_attempt_at <= timezone.now() < dead.give_up_at
    assert Delivery.objects.get(pk=delivered.pk).status == "delivered"  # a delivered one is not sent again
    admin_client.post(DELIVERIES, {"action": "discard", "_selected_action": [other.pk]})
    assert Delivery.objects.get(pk=other.pk).status == "discarded"


def test_staff_who_may_only_look_see_deliveries_but_cannot_retry_them(client):
    user = staff_with("looker", "view_delivery", "view_subscription")
    client.force_login(user)
    dead = dead_letter(Subscription.objects.create(name="hook", email="a@example.com"))
    page = client.get(DELIVERIES)
    assert page.status_code == 200 and "HTTP 503" in page.content.decode()
    assert 'value="retry"' not in page.content.decode()
    client.post(DELIVERIES, {"action": "retry", "_selected_action": [dead.pk]})
    assert Delivery.objects.get(pk=dead.pk).status == "dead"


@pytest.mark.parametrize("term", ["not-a-uuid", "\u2603", "x" * 500])
def test_searching_deliveries_for_anything_is_never_an_error(admin_client, term):
    dead_letter(Subscription.objects.create(name="hook", email="a@example.com"))
    assert admin_client.get(DELIVERIES, {"q": term}).status_code == 200


@pytest.mark.parametrize("object_id", ["abc", "99999999999999999999999", "-1", "%00", "1.5"])
def test_a_bad_delivery_or_subscription_link_is_never_a_500(admin_client, object_id):
    admin_client.raise_request_exception = False
    for name in ("admin:supervisors_delivery_change", "admin:supervisors_subscription_change"):
        url = reverse(name, args=["X"]).replace("/X/", f"/{object_id}/")
        assert admin_client.get(url).status_code < 500, url
