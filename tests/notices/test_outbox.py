"""The outbox alone: a notice is sent once, a failed one waits twice as long each time, and is given up after
settings' max_attempts. `send` here is a function of the test: the outbox is the unit under test."""

from __future__ import annotations

import datetime as dt

import pytest

from borderx.audit import events as ev
from borderx.notices.messages import Notice
from borderx.notices.outbox import Outbox, backoff

T0 = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.timezone.utc)


def _notice(key: str = "accepted/ZA-DHA/x") -> Notice:
    return Notice("accepted", "provider", "ZA-DHA", key, "[borderx] subject", "text\n", {"dataset": "x"})


def test_a_notice_waits_in_the_outbox_with_every_field_and_comes_back_the_same():
    import dataclasses

    notice = Notice("accepted", "provider", "ZA-DHA", "k", "[borderx] s", "text\n",
                    {"dataset": "x", "reasons": ["a", "b"], "deliveries": []})
    assert notice.to_dict() == dataclasses.asdict(notice)
    assert Notice.from_dict(notice.to_dict()) == notice


def test_backoff_doubles_from_a_minute_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 7, 8, 30)] == [60, 120, 240, 3600, 3600, 3600]


def test_a_notice_posted_twice_is_sent_once(tmp_path):
    box, sent = Outbox(tmp_path / "outbox"), []
    addresses = [("email", "a@x.test"), ("webhook", "https://h.test/a")]
    assert len(box.post(_notice(), addresses, T0)) == 2
    assert box.post(_notice(), addresses, T0) == []
    done = box.drain(lambda *call: sent.append(call), T0, max_attempts=3)
    assert done.sent == 2 and [c[:2] for c in sent] == [("email", "a@x.test"), ("webhook", "https://h.test/a")]
    assert box.post(_notice(), addresses, T0) == [], "sent already"
    assert box.drain(lambda *call: sent.append(call), T0, max_attempts=3).sent == 0


def test_a_failing_notice_waits_out_its_backoff_and_is_given_up_at_last(tmp_path):
    box, recorded = Outbox(tmp_path / "outbox"), []

    def refuse(channel, address, notice):
        raise ConnectionRefusedError(111, "Connection refused")

    [entry_id] = box.post(_notice(), [("email", "a@x.test")], T0)
    now = T0
    for attempt in (1, 2, 3):
        assert box.drain(refuse, now - dt.timedelta(seconds=1), max_attempts=3, record=recorded.append).failed == 0
        done = box.drain(refuse, now, max_attempts=3, record=recorded.append)
        now += backoff(attempt)
    assert done.given_up == 1 and not box.waiting()
    assert (tmp_path / "outbox" / "failed" / f"{entry_id}.json").exists()
    assert [type(e) for e in recorded] == [ev.NoticeFailed] * 3
    assert [e.attempts for e in recorded] == [1, 2, 3] and [e.given_up for e in recorded] == [False, False, True]
    assert all("ConnectionRefusedError" in e.problem and e.channel == "email" for e in recorded)


@pytest.mark.parametrize("channels,tried", [(frozenset({"webhook"}), 1), (frozenset({"email", "webhook"}), 2)])
def test_a_channel_without_its_server_waits_untried(tmp_path, channels, tried):
    box, sent = Outbox(tmp_path / "outbox"), []
    box.post(_notice(), [("email", "a@x.test"), ("webhook", "https://h.test/a")], T0)
    done = box.drain(lambda *call: sent.append(call), T0, max_attempts=3, channels=channels)
    assert done.sent == tried and done.waiting == 2 - tried


def test_a_problem_never_names_the_address_a_webhook_token_hides_in(tmp_path):
    box, recorded = Outbox(tmp_path / "outbox"), []
    url = "http://127.0.0.1:9/hooks/T0KEN-s3cret?sig=abc123"

    def refuse(channel, address, notice):
        raise ConnectionError(f"HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
                              f"/hooks/T0KEN-s3cret?sig=abc123 (refused) for {address}")

    box.post(_notice(), [("webhook", url)], T0)
    box.drain(refuse, T0, max_attempts=3, record=recorded.append)
    [failed] = recorded
    assert "T0KEN" not in failed.problem and "abc123" not in failed.problem and "[address]" in failed.problem
    assert "T0KEN" not in box.waiting()[0]["last_problem"]

