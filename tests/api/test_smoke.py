from tests.api.conftest import url


def test_get_supervisor(alpha, supervisor):
    response = alpha.client.get(url(supervisor.contract_id))
    assert response.status_code == 200, response.content
    assert response.json()["contractId"] == str(supervisor.contract_id)
    assert response["ETag"]


def test_heartbeat(alpha, supervisor):
    response = alpha.client.post(
        url(supervisor.contract_id, "heartbeat/"), {"state": "working", "currentActivity": "x", "progress": 5}, format="json"
    )
    assert response.status_code == 200, response.content
