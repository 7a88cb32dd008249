"""Many agents writing at once: positions allocated atomically; conversations belong to their agent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from apps.customer_service.storage import SupportStore
from tests.apps.customer_service.test_storage import answer, store, url  # noqa: F401  (fixtures)

WRITERS = 20


def test_twenty_concurrent_writers_to_one_conversation(store):  # noqa: F811
    conv = store.start_conversation("busy", owner="ana")

    def write(i: int) -> int:
        return store.add_exchange(conv, f"question {i}", answer(f"answer {i}"))

    with ThreadPoolExecutor(WRITERS) as pool:
        ids = list(pool.map(write, range(WRITERS)))
    assert len(set(ids)) == WRITERS
    messages = store.messages(conv)
    assert len(messages) == 2 * WRITERS
    # every question is directly followed by its own answer
    for question, reply in zip(messages[::2], messages[1::2], strict=True):
        assert question["role"] == "user" and reply["role"] == "assistant"
        assert question["content"].split()[-1] == reply["content"].split()[-1]


def test_agents_see_their_own_conversations(store):  # noqa: F811
    mine = store.start_conversation("mine", owner="ana")
    theirs = store.start_conversation("theirs", owner="ben")
    assert [c["id"] for c in store.conversations(owner="ana")] == [mine]
    assert {c["id"] for c in store.conversations()} == {mine, theirs}
    assert store.conversation_owner(theirs) == "ben"
    assert isinstance(store, SupportStore)
