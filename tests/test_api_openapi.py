"""The OpenAPI 3.1 document describes every API route, its bearer auth, the
request body as validated, and answers that real answers match."""

from __future__ import annotations

import json
import re

from portal.api import schemas
from tests import factories

DOC = "/api/v1/openapi.json"


def _path_of(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.removeprefix("/api/v1"))


def test_every_api_route_is_described(app, client):
    response = client.get(DOC)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = json.loads(response.get_data(as_text=True))
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"][0]["url"].endswith("/api/v1")
    routes = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")]
    assert len(routes) >= 5
    for rule in routes:
        path = _path_of(rule.rule)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path][method.lower()]
            assert operation["responses"], (path, method)
            for response in operation["responses"].values():
                assert response["description"]


def test_bearer_security_and_scopes(client):
    doc = client.get(DOC).get_json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]
    post = doc["paths"]["/leads"]["post"]
    assert post["security"] == [{"bearer": ["leads:write"]}]
    assert doc["paths"]["/health"]["get"]["security"] == []
    for code in ("400", "401", "403", "413", "415", "422", "429"):
        assert code in post["responses"], code
    assert "Retry-After" in post["responses"]["429"]["headers"]


def test_every_reference_resolves(client):
    doc = client.get(DOC).get_json()
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs
    for name in refs:
        assert name in doc["components"]["schemas"], name


def test_the_request_body_is_the_validated_model(client):
    doc = client.get(DOC).get_json()
    body = doc["paths"]["/leads"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    lead_in = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert lead_in["required"] == ["name"]
    assert lead_in["additionalProperties"] is False
    assert lead_in["properties"]["name"]["maxLength"] == 200
    assert lead_in["properties"]["custom"]["maxProperties"] == 50
    error = doc["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "message", "fields"}


def test_real_answers_match_the_documented_schemas(client, ctx):
    factories.enable_roulette()
    agent = factories.make_user("attendant")
    factories.go_online(agent)
    key = factories.make_api_key()
    headers = {"Authorization": f"Bearer {key}"}
    created = client.post(
        "/api/v1/leads",
        json={"name": "Rui", "email": "rui@example.com"},
        headers=headers,
        csrf=False,
    )
    schemas.LeadCreatedOut.model_validate(created.get_json(), strict=True)
    lead = client.get(f"/api/v1/leads/{created.get_json()['id']}", headers=headers)
    schemas.LeadOut.model_validate(lead.get_json(), strict=True)
    page = client.get("/api/v1/contacts", headers=headers)
    schemas.ContactPageOut.model_validate(page.get_json(), strict=True)
    invalid = client.post("/api/v1/leads", json={}, headers=headers, csrf=False)
    schemas.ErrorOut.model_validate(invalid.get_json(), strict=True)
    schemas.HealthOut.model_validate(client.get("/api/v1/health").get_json())
