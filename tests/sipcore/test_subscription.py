"""RFC 6665 subscriptions and RFC 3903 publications: the sans-IO cores, then UAs on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import SipRequest, SipResponse, make_response, parse_message
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import RequestFailed, ServerSubscription, UserAgent
from sipcore.errors import LocalProtocolError
from sipcore.header_extra import parse_event
from sipcore.headers import Headers
from sipcore.stack import Target
from sipcore.subscription import (
    Notifier,
    NotifyReceived,
    PublicationStore,
    Publisher,
    RefreshDue,
    Subscriber,
    SubscriptionEnded,
    SubState,
    event_matches,
)
from sipcore.timers import SipTimers

PIDF_OPEN = b'<presence entity="sip:bob@example.test"><tuple id="t"><status><basic>open</basic></status></tuple></presence>'
PIDF_CLOSED = PIDF_OPEN.replace(b"open", b"closed")
T = SipTimers()


def _wire(msg: SipRequest | SipResponse) -> SipRequest | SipResponse:
    """Through bytes and back, as the network would deliver it."""
    if isinstance(msg, SipRequest) and "via" not in msg.headers:
        msg.headers.add_first("Via", "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKw" + str(id(msg)))
    return parse_message(bytes(msg))


def _subscribe(expires: int = 600, event: str = "presence") -> SipRequest:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKsub")
    h.add("From", "<sip:alice@example.test>;tag=al")
    h.add("To", "<sip:bob@example.test>")
    h.add("Call-ID", "sub-1")
    h.add("CSeq", "1 SUBSCRIBE")
    h.add("Contact", "<sip:alice@10.0.0.1>")
    h.add("Event", event)
    h.add("Expires", str(expires))
    return SipRequest("SUBSCRIBE", "sip:bob@example.test", h)


def _pair(expires: int = 600) -> tuple[Subscriber, Notifier]:
    req = _subscribe(expires)
    return Subscriber(req, now=0.0, timers=T), Notifier(_wire(req), max_expires=3600)  # type: ignore[arg-type]


# -- Subscriber / Notifier ------------------------------------------------------------------------------
def test_subscribe_notify_refresh_unsubscribe() -> None:
    sub, notifier = _pair()
    ok = notifier.accept(0.0, contact="<sip:bob@10.0.0.2>")
    assert ok.status_code == 200 and ok.headers.get("expires") == "600" and notifier.state is SubState.ACTIVE
    assert sub.receive_response(_wire(ok), 0.0) == []  # type: ignore[arg-type]
    assert sub.dialog is not None and sub.state is SubState.SUBSCRIBING
    assert sub.next_deadline() == pytest.approx(64 * T.t1)  # Timer N: waiting for the NOTIFY
    notify = notifier.notify(0.1, PIDF_OPEN, "application/pidf+xml")
    assert notify.headers.get("subscription-state") == "active;expires=599"
    code, events = sub.receive_notify(_wire(notify), 0.2)  # type: ignore[arg-type]
    (ev,) = events
    assert code == 200 and isinstance(ev, NotifyReceived) and ev.state is SubState.ACTIVE
    assert ev.body == PIDF_OPEN and ev.content_type == "application/pidf+xml" and ev.expires == 599
    assert sub.next_deadline() == pytest.approx(0.2 + 599 - 32)  # refresh 32 s before expiry
    assert sub.handle_timeout(0.2 + 599 - 32) == [RefreshDue()]
    refresh = sub.refresh_request()
    assert refresh.cseq.seq == 2 and refresh.headers.get("event") == "presence" and refresh.to.tag is not None
    resp = notifier.receive_subscribe(_wire(refresh), 570.0)  # type: ignore[arg-type]
    assert resp.status_code == 200 and resp.headers.get("expires") == "600"
    sub.receive_response(_wire(resp), 570.0)  # type: ignore[arg-type]
    assert sub.expires_at == pytest.approx(1170.0)
    # unsubscribe: 200, then the notifier's final NOTIFY ends it
    resp = notifier.receive_subscribe(_wire(sub.unsubscribe_request()), 600.0)  # type: ignore[arg-type]
    assert resp.status_code == 200 and notifier.state is SubState.TERMINATED
    assert sub.receive_response(_wire(resp), 600.0) == []  # type: ignore[arg-type]
    last = notifier.notify(600.0)
    assert last.headers.get("subscription-state") == "terminated;reason=timeout"
    code, events = sub.receive_notify(_wire(last), 600.1)  # type: ignore[arg-type]
    assert code == 200 and isinstance(events[-1], SubscriptionEnded) and events[-1].retry_after == 0
    assert sub.state is SubState.TERMINATED and sub.next_deadline() is None


def test_notify_before_the_2xx_creates_the_dialog() -> None:
    sub, notifier = _pair()
    ok = notifier.accept(0.0, contact="<sip:bob@10.0.0.2>", pending=True)
    notify = notifier.notify(0.0)
    assert notify.headers.get("subscription-state") == "pending;expires=600"
    code, (ev,) = sub.receive_notify(_wire(notify), 0.1)  # type: ignore[arg-type]
    assert code == 200 and isinstance(ev, NotifyReceived) and ev.state is SubState.PENDING
    assert sub.dialog is not None and sub.dialog.remote_tag == ok.to.tag
    sub.receive_response(_wire(ok), 0.2)  # type: ignore[arg-type]
    notifier.activate()
    code, (ev,) = sub.receive_notify(_wire(notifier.notify(1.0)), 1.0)  # type: ignore[arg-type]
    assert ev.state is SubState.ACTIVE  # type: ignore[union-attr]
    assert sub.refresh_request().cseq.seq == 2  # the subscriber's CSeq goes on from its SUBSCRIBE


def test_subscriber_rejects_bad_notifies_and_ends_on_reasons() -> None:
    sub, notifier = _pair()
    notifier.accept(0.0, contact="<sip:bob@10.0.0.2>")
    good = notifier.notify(0.0)
    wrong_event = _wire(good)
    wrong_event.headers.set("Event", "dialog")
    assert not sub.matches_notify(wrong_event)  # type: ignore[arg-type]
    assert sub.receive_notify(wrong_event, 0.0) == (489, [])  # type: ignore[arg-type]
    no_state = _wire(good)
    no_state.headers.remove("subscription-state")
    assert sub.receive_notify(no_state, 0.0) == (400, [])  # type: ignore[arg-type]
    assert sub.matches_notify(_wire(good))  # type: ignore[arg-type]
    for reason, retry in (("rejected", None), ("noresource", None), ("probation", 30.0), ("deactivated", 0.0)):
        s2, n2 = _pair()
        n2.accept(0.0, contact="<sip:bob@10.0.0.2>")
        _, events = s2.receive_notify(_wire(n2.notify(0.0, terminate=reason)), 0.0)  # type: ignore[arg-type]
        assert isinstance(events[-1], SubscriptionEnded) and events[-1].reason == reason
        assert events[-1].retry_after == retry
    s3, n3 = _pair()
    n3.accept(0.0, contact="<sip:bob@10.0.0.2>")
    _, events = s3.receive_notify(_wire(n3.notify(0.0, terminate="giveup", retry_after=90)), 0.0)  # type: ignore[arg-type]
    assert events[-1].retry_after == 90.0  # type: ignore[union-attr]


def test_timer_n_expiry_and_failed_refresh() -> None:
    sub, notifier = _pair()
    sub.receive_response(_wire(notifier.accept(0.0, contact="<sip:b@10.0.0.2>")), 0.0)  # type: ignore[arg-type]
    (ended,) = sub.handle_timeout(64 * T.t1)
    assert isinstance(ended, SubscriptionEnded) and ended.reason == "timeout"
    sub, notifier = _pair(expires=100)
    sub.receive_response(_wire(notifier.accept(0.0, contact="<sip:b@10.0.0.2>")), 0.0)  # type: ignore[arg-type]
    sub.receive_notify(_wire(notifier.notify(0.0)), 0.0)  # type: ignore[arg-type]
    assert sub.next_deadline() == pytest.approx(68.0)  # max(50, 100 - 32)
    refresh = sub.refresh_request()
    assert sub.receive_response(make_response(refresh, 500), 70.0) == []  # still alive until it expires
    (ended,) = sub.handle_timeout(100.0)
    assert isinstance(ended, SubscriptionEnded)
    sub, notifier = _pair()
    sub.receive_response(_wire(notifier.accept(0.0, contact="<sip:b@10.0.0.2>")), 0.0)  # type: ignore[arg-type]
    (ended,) = sub.receive_response(make_response(sub.refresh_request(), 481), 1.0)
    assert isinstance(ended, SubscriptionEnded) and ended.status == 481
    rejected = Subscriber(_subscribe(), now=0.0)
    (ended,) = rejected.receive_response(make_response(_subscribe(), 489), 0.0)
    assert isinstance(ended, SubscriptionEnded) and ended.retry_after is None
    with pytest.raises(LocalProtocolError):
        Subscriber(SipRequest("OPTIONS", "sip:x@y", _subscribe().headers), now=0.0)


def test_notifier_limits_and_expiry() -> None:
    n = Notifier(_wire(_subscribe(30)), min_expires=60)  # type: ignore[arg-type]
    resp = n.accept(0.0, contact="<sip:b@10.0.0.2>")
    assert resp.status_code == 423 and resp.headers.get("min-expires") == "60"
    n = Notifier(_wire(_subscribe(99999)), max_expires=3600)  # type: ignore[arg-type]
    assert n.accept(0.0, contact="<sip:b@10.0.0.2>").headers.get("expires") == "3600"
    assert n.next_deadline() == 3600.0
    assert not n.handle_timeout(3599.0) and n.handle_timeout(3600.0)
    assert n.notify(3600.0).headers.get("subscription-state") == "terminated;reason=timeout"
    n = Notifier(_wire(_subscribe()))  # type: ignore[arg-type]
    n.accept(0.0, contact="<sip:b@10.0.0.2>")
    notify = n.notify(1.0)
    assert n.receive_notify_response(make_response(notify, 481)) and n.state is SubState.TERMINATED
    fetch = Notifier(_wire(_subscribe(0)))  # type: ignore[arg-type]
    fetch.accept(0.0, contact="<sip:b@10.0.0.2>")
    assert fetch.notify(0.0).headers.get("subscription-state") == "terminated;reason=timeout"  # a fetch
    assert event_matches(parse_event("presence;id=1"), parse_event("Presence;id=1"))
    assert not event_matches(parse_event("presence;id=1"), parse_event("presence"))


# -- Publisher / PublicationStore --------------------------------------------------------------------------
def _publish(parts: tuple[list[tuple[str, str]], bytes, str | None], uri: str = "sip:bob@example.test") -> SipRequest:
    headers, body, ct = parts
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKpub")
    h.add("From", "<sip:bob@example.test>;tag=bb")
    h.add("To", f"<{uri}>")
    h.add("Call-ID", "pub-1")
    h.add("CSeq", "1 PUBLISH")
    for name, value in headers:
        h.add(name, value)
    if ct:
        h.add("Content-Type", ct)
    return SipRequest("PUBLISH", uri, h, body)


def test_publish_refresh_modify_remove_and_412() -> None:
    counter = iter(range(1000))
    store = PublicationStore(rng=lambda n: next(counter).to_bytes(n, "big"))
    pub = Publisher("presence", expires=600)
    resp = store.receive_publish(_publish(pub.publish(PIDF_OPEN, "application/pidf+xml")), 0.0)
    assert resp.status_code == 200 and pub.receive_response(resp, 0.0) == "ok"
    first = pub.etag
    assert first and store.state("sip:bob@example.test", "presence", 1.0)[0].body == PIDF_OPEN
    assert pub.next_deadline() == pytest.approx(568.0)
    assert pub.handle_timeout(568.0)
    headers, body, _ = pub.refresh()
    assert ("SIP-If-Match", first) in headers and body == b""
    resp = store.receive_publish(_publish((headers, body, None)), 568.0)
    assert pub.receive_response(resp, 568.0) == "ok" and pub.etag != first  # a new entity-tag each time
    resp = store.receive_publish(_publish(pub.publish(PIDF_CLOSED, "application/pidf+xml")), 600.0)
    assert pub.receive_response(resp, 600.0) == "ok"
    (state,) = store.state("sip:bob@example.test", "presence", 600.0)
    assert state.body == PIDF_CLOSED and state.etag == pub.etag
    # the ESC forgot everything: 412, and the Publisher sends its full state again
    fresh = PublicationStore()
    resp = fresh.receive_publish(_publish(pub.refresh()), 700.0)
    assert resp.status_code == 412 and pub.receive_response(resp, 700.0) == "republish"
    resp = fresh.receive_publish(_publish(pub.publish(pub.body, "application/pidf+xml")), 700.0)
    assert pub.receive_response(resp, 700.0) == "ok"
    resp = fresh.receive_publish(_publish(pub.remove()), 710.0)
    assert resp.status_code == 200 and pub.receive_response(resp, 710.0) == "removed"
    assert fresh.state("sip:bob@example.test", "presence", 710.0) == [] and pub.etag is None
    # state expires by itself
    store.receive_publish(_publish(Publisher("presence", expires=60).publish(PIDF_OPEN, "application/pidf+xml")),
                          1000.0)
    assert store.next_deadline() is not None
    assert len(store.state("sip:bob@example.test", "presence", 1059.0)) == 2
    assert len(store.state("sip:bob@example.test", "presence", 1201.0)) == 0


def test_publication_store_errors_and_423() -> None:
    store = PublicationStore(min_expires=60)
    pub = Publisher("presence", expires=30)
    resp = store.receive_publish(_publish(pub.publish(PIDF_OPEN, "application/pidf+xml")), 0.0)
    assert resp.status_code == 423 and pub.receive_response(resp, 0.0) == "retry" and pub.expires == 60
    assert store.receive_publish(_publish(Publisher("weather").publish(b"sun", "text/plain")), 0.0).status_code == 489
    assert store.receive_publish(_publish(([("Event", "presence")], b"", None)), 0.0).status_code == 400
    bad_tag = ([("Event", "presence"), ("SIP-If-Match", "nope")], b"", None)
    assert store.receive_publish(_publish(bad_tag), 0.0).status_code == 412
    with pytest.raises(LocalProtocolError):
        Publisher("presence").refresh()
    with pytest.raises(LocalProtocolError):
        Publisher("presence").publish(b"", "text/plain")


# -- over real sockets ----------------------------------------------------------------------------------
async def _pair_uas() -> tuple[UserAgent, UserAgent]:
    ea, eb = AioSipEndpoint(), AioSipEndpoint()
    await ea.listen("udp", "127.0.0.1", 0)
    host, port = await eb.listen("udp", "127.0.0.1", 0)
    a = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("udp", host, port))
    b = UserAgent(eb, aor="sip:bob@example.test", outbound=None)
    return a, b


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


def test_presence_subscription_between_uas() -> None:
    async def run() -> None:
        alice, bob = await _pair_uas()
        served: list[ServerSubscription] = []

        def on_subscribe(sub: ServerSubscription) -> None:
            assert sub.event.package == "presence"
            sub.accept(PIDF_OPEN, "application/pidf+xml")
            served.append(sub)

        bob.on_subscribe = on_subscribe
        sub = await asyncio.wait_for(alice.subscribe("sip:bob@example.test", "presence", expires=600,
                                                     accept="application/pidf+xml"), 5)
        first = await asyncio.wait_for(sub.notifications.get(), 5)
        assert first.state is SubState.ACTIVE and first.body == PIDF_OPEN and sub.state is SubState.ACTIVE
        (notifier,) = served
        resp = await asyncio.wait_for(notifier.notify(PIDF_CLOSED, "application/pidf+xml"), 5)
        assert resp is not None and resp.status_code == 200
        second = await asyncio.wait_for(sub.notifications.get(), 5)
        assert second.body == PIDF_CLOSED
        resp = await asyncio.wait_for(sub.refresh(), 5)  # a refresh is followed by a NOTIFY
        assert resp is not None and resp.status_code == 200
        assert (await asyncio.wait_for(sub.notifications.get(), 5)).body == PIDF_CLOSED
        ended = await asyncio.wait_for(sub.unsubscribe(), 5)
        assert ended is not None and ended.reason == "timeout" and sub.state is SubState.TERMINATED
        await asyncio.wait_for(notifier.ended.wait(), 5)
        assert not alice._subscriptions and not bob._dialog_users
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_notifier_terminates_and_unknown_event_is_489() -> None:
    async def run() -> None:
        alice, bob = await _pair_uas()
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(alice.subscribe("sip:bob@example.test", "presence"), 5)
        assert info.value.status == 489  # nobody serves events at Bob yet
        served: list[ServerSubscription] = []
        bob.on_subscribe = lambda s: (s.accept(), served.append(s)) and None
        sub = await asyncio.wait_for(alice.subscribe("sip:bob@example.test", "message-summary"), 5)
        await asyncio.wait_for(sub.notifications.get(), 5)
        await asyncio.wait_for(served[0].terminate("rejected"), 5)
        ended = await asyncio.wait_for(sub.ended, 5)
        assert ended.reason == "rejected" and ended.retry_after is None
        bob.on_subscribe = lambda s: s.reject(403)
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(alice.subscribe("sip:bob@example.test", "presence"), 5)
        assert info.value.status == 403
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_publish_to_an_esc() -> None:
    async def run() -> None:
        alice, bob = await _pair_uas()
        bob.publications = PublicationStore()
        pub = await asyncio.wait_for(alice.publish("sip:alice@example.test", "presence", PIDF_OPEN,
                                                   "application/pidf+xml", expires=600), 5)
        first = pub.etag
        (state,) = bob.publications.state("sip:alice@example.test", "presence", bob.endpoint.now())
        assert state.body == PIDF_OPEN and state.etag == first
        resp = await asyncio.wait_for(pub.modify(PIDF_CLOSED, "application/pidf+xml"), 5)
        assert resp.status_code == 200 and pub.etag != first
        bob.publications = PublicationStore()  # the ESC restarted
        resp = await asyncio.wait_for(pub.refresh(), 5)  # 412, then the full state again
        assert resp.status_code == 200
        (state,) = bob.publications.state("sip:alice@example.test", "presence", bob.endpoint.now())
        assert state.body == PIDF_CLOSED
        resp = await asyncio.wait_for(pub.remove(), 5)
        assert resp.status_code == 200 and not bob.publications.state("sip:alice@example.test", "presence",
                                                                      bob.endpoint.now())
        bob.publications = PublicationStore(min_expires=120)
        short = await asyncio.wait_for(alice.publish("sip:alice@example.test", "presence", PIDF_OPEN,
                                                     "application/pidf+xml", expires=60), 5)
        assert short.core.expires == 120 and short.etag is not None  # 423, then Min-Expires
        assert alice._publications == [short]
        await alice.close()  # stops the refresh timers
        assert not alice._publications
        bob.publications = None
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(alice.publish("sip:alice@example.test", "presence", PIDF_OPEN, "text/plain"), 5)
        assert info.value.status == 405
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


# -- hostile input -----------------------------------------------------------------------------------------
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=50)


@given(HEADER_TEXT, HEADER_TEXT, HEADER_TEXT)
def test_hostile_notify_and_subscribe_headers(event: str, state: str, expires: str) -> None:
    sub, notifier = _pair()
    notifier.accept(0.0, contact="<sip:b@10.0.0.2>")
    notify = _wire(notifier.notify(0.0))
    for name, value in (("Event", event), ("Subscription-State", state), ("Expires", expires)):
        notify.headers.set(name, value)
    sub.matches_notify(notify)  # type: ignore[arg-type]
    code, _ = sub.receive_notify(notify, 0.0)  # type: ignore[arg-type]
    assert code in (200, 400, 481, 489, 500)
    refresh = _subscribe()
    refresh.headers.set("To", f"<sip:bob@example.test>;tag={notifier.dialog.local_tag if notifier.dialog else 'x'}")
    refresh.headers.set("CSeq", "2 SUBSCRIBE")
    refresh.headers.set("Event", event)
    refresh.headers.set("Expires", expires)
    assert notifier.receive_subscribe(refresh, 1.0).status_code in (200, 400, 423, 481, 489, 500)


@given(HEADER_TEXT, HEADER_TEXT, st.binary(max_size=40))
def test_hostile_publish(expires: str, if_match: str, body: bytes) -> None:
    store = PublicationStore()
    req = _publish(([("Event", "presence"), ("Expires", expires), ("SIP-If-Match", if_match)], body,
                    "application/pidf+xml" if body else None))
    assert store.receive_publish(req, 0.0).status_code in (200, 400, 412, 423, 489)
    pub = Publisher("presence")
    resp = make_response(req, 200, headers=[("SIP-ETag", if_match or "x"), ("Expires", expires)])
    assert pub.receive_response(resp, 0.0) in ("ok", "failed")
    resp = make_response(req, 423, headers=[("Min-Expires", expires)])
    assert pub.receive_response(resp, 0.0) in ("retry", "failed")
