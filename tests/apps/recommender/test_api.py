"""The recommender endpoints on a live API: top-k with reasons, cold-start fallback, similar items."""

from __future__ import annotations


def test_known_user_gets_unseen_items_with_reasons(api, sample_dataset) -> None:
    user = str(sample_dataset.user_ids[0])
    reply = api.client.get(f"/v1/recommend/users/{user}?k=5", headers=api.headers("analyst"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["known"] is True and [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    seen = set(sample_dataset.interactions.loc[sample_dataset.interactions["user_id"] == user, "item_id"])
    assert not seen & {i["item_id"] for i in body["items"]}
    assert all(i["reason"] and i["title"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_unknown_user_gets_the_fallback(api) -> None:
    body = api.client.get("/v1/recommend/users/never-seen-user?k=3", headers=api.headers("analyst")).json()
    assert body["known"] is False and len(body["items"]) == 3


def test_similar_items_and_errors(api, sample_dataset) -> None:
    item = str(sample_dataset.items["item_id"].iloc[0])
    reply = api.client.get(f"/v1/recommend/items/{item}/similar?k=4", headers=api.headers("analyst"))
    assert reply.status_code == 200
    items = reply.json()["items"]
    assert len(items) == 4 and item not in [i["item_id"] for i in items]
    missing = api.client.get("/v1/recommend/items/no-such-item/similar", headers=api.headers("analyst"))
    assert missing.status_code == 404 and missing.json()["field"] == "path.item_id"
    bad_k = api.client.get("/v1/recommend/users/x?k=0", headers=api.headers("analyst"))
    assert bad_k.status_code == 422 and bad_k.json()["field"] == "query.k"
    assert api.client.get("/v1/recommend/users/x", headers=api.headers("agent")).status_code == 403
