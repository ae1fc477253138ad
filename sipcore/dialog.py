"""SIP dialogs: state, route set, CSeq rules and in-dialog requests (RFC 3261 §12, §13.2.2.4, §15).

A dialog is the peer-to-peer relationship a dialog-creating request (INVITE, SUBSCRIBE, REFER)
sets up; it is identified by Call-ID, local tag and remote tag (§12). Both sides keep:

* ``local_seq`` / ``remote_seq``: the CSeq numbers last sent / received; an in-dialog request
  with a lower number than ``remote_seq`` is out of order and answered 500 (§12.2.2).
* ``remote_target``: where requests go (the peer's Contact), replaced by target refresh
  requests and their 2xx (re-INVITE, UPDATE RFC 3311, SUBSCRIBE and NOTIFY RFC 6665).
* ``route_set``: the Record-Route of the dialog-creating exchange, reversed on the UAC side
  and in order on the UAS side (§12.1.1, §12.1.2), so both send towards the same proxies.

Requests are built per §12.2.1.1: with a loose-routing first hop (``;lr``) the Request-URI is
the remote target and Route is the route set; with a strict router first, the Request-URI is
that router and the remote target goes last in Route. ACK for a 2xx reuses the INVITE's
CSeq number (§13.2.2.4). The module never adds a Via unless asked: the transaction layer
(``SipStack.send_request`` / ``send_ack``) owns branches.

State machine (§12.1, §12.3, §13.2.2.4, §15)::

                1xx with To tag                      2xx (UAC: route set recomputed)
    (created) ─────────────────────▶ EARLY ──────────────────────────────▶ CONFIRMED
        │                              │  (UAS: confirm() when it sends the 2xx)   │
        │ 2xx                          │                                           │
        └──────────────────────────────┼────────────────────▶ CONFIRMED            │
                                       │ 3xx-6xx to the                            │ BYE received / final
                                       │ dialog-creating request                   │ response to our BYE /
                                       ▼                                           │ 481 or 408 to any
                                  TERMINATED ◀─────────────────────────────────────┘ in-dialog request

:class:`DialogSet` keeps dialogs by id; a UAC whose INVITE forked sees one early dialog per
To tag (§12.1.2, §13.2.2.4) and :meth:`DialogSet.process_uac_response` creates each one.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from .errors import LocalProtocolError, RemoteProtocolError, SipParseError
from .header_types import NameAddr
from .headers import Headers
from .message import SipRequest, SipResponse
from .uri import SipUri, Uri

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogSet",
    "DialogState",
    "dialog_id_for_request",
    "dialog_id_for_response",
]

log = logging.getLogger(__name__)

TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
"""Requests whose Contact replaces the remote target: re-INVITE (RFC 3261 §12.2), UPDATE
(RFC 3311 §5.2), SUBSCRIBE and NOTIFY (RFC 6665: both are target refresh requests)."""

MAX_CSEQ = 2**32 - 1
_INITIAL_CSEQ_MASK = 0x7FFFFFFF  # RFC 3261 §8.1.1.5: the initial value MUST be below 2**31
_NOT_IN_REQUEST_URI = frozenset({"method"})  # RFC 3261 §19.1.1 table: not allowed in a Request-URI


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogId(NamedTuple):
    """(Call-ID, local tag, remote tag) from this side's point of view (RFC 3261 §12)."""

    call_id: str
    local_tag: str
    remote_tag: str


class DialogError(RemoteProtocolError):
    """A request or response does not fit the dialog.

    ``status_hint`` is what a UAS answers a request with: 500 for a CSeq out of order
    (§12.2.2), 481 when the dialog does not exist (any more), 400 for a dialog-creating
    request without a usable Contact. ``None`` for problems with a received response.
    """

    def __init__(self, message: str, status_hint: int | None = None) -> None:
        super().__init__(message)
        self.status_hint = status_hint


def dialog_id_for_request(request: SipRequest) -> DialogId | None:
    """Id of the dialog a received request belongs to, seen by its UAS; None without To tag.

    A From tag missing (RFC 2543 peer) counts as the empty tag.
    """
    to_tag = request.to.tag
    if to_tag is None:
        return None
    return DialogId(request.call_id, to_tag, request.from_.tag or "")


def dialog_id_for_response(response: SipResponse) -> DialogId | None:
    """Id of the dialog a received response belongs to, seen by its UAC; None without To tag."""
    to_tag = response.to.tag
    from_tag = response.from_.tag
    if to_tag is None or from_tag is None:
        return None
    return DialogId(response.call_id, from_tag, to_tag)


def _party(value: NameAddr) -> NameAddr:
    """A private copy of a From/To value (the message's cached view must not change under us)."""
    return NameAddr(uri=value.uri, display_name=value.display_name, params=list(value.params), bracketed=True)


def _contact_uri(msg: SipRequest | SipResponse, what: str, status_hint: int | None) -> Uri | None:
    contacts = msg.contacts
    if not contacts:
        return None
    first = contacts[0]
    if first.star or first.uri is None:
        raise DialogError(f"Contact '*' in {what}", status_hint)
    return first.uri


def _routes(entries: Sequence[NameAddr]) -> list[NameAddr]:
    return [NameAddr(uri=e.uri, display_name=e.display_name, params=list(e.params), bracketed=True) for e in entries]


class Dialog:
    """One dialog (RFC 3261 §12). Build it with :meth:`from_uac` or :meth:`from_uas`."""

    __slots__ = (
        "_initial_cseq",
        "_initial_method",
        "_rng",
        "call_id",
        "is_uac",
        "local_party",
        "local_seq",
        "local_target",
        "remote_party",
        "remote_seq",
        "remote_target",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: list[NameAddr],
        secure: bool,
        state: DialogState,
        is_uac: bool,
        local_target: str | None = None,
        initial: tuple[str, int] = ("INVITE", 0),
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if local_party.tag is None:
            raise LocalProtocolError("the local party of a dialog needs a tag")
        self.call_id = call_id
        self.local_party = local_party
        """Our From (UAC) / To (UAS) value, tag included: the From of requests we send."""
        self.remote_party = remote_party
        """The peer's value, tag included (none from an RFC 2543 peer): the To of requests we send."""
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure
        self.state = state
        self.is_uac = is_uac
        self.local_target = local_target
        """Our Contact, used by default in target refresh requests."""
        self._initial_method, self._initial_cseq = initial
        self._rng = rng

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse, *, secure: bool | None = None) -> Dialog:
        """The UAC's dialog from a 1xx with To tag (EARLY) or a 2xx (CONFIRMED) (RFC 3261 §12.1.2).

        ``secure`` defaults to "the Request-URI is a SIPS URI" (the RFC also asks for TLS,
        which only the transport knows).
        """
        code = response.status_code
        if not 101 <= code <= 299 or response.to.tag is None:
            raise LocalProtocolError(f"a {code} without To tag does not create a dialog")
        if (response.call_id != request.call_id or response.cseq != request.cseq
                or response.from_.tag != request.from_.tag):
            raise LocalProtocolError("the response does not answer this request")
        if request.from_.tag is None:
            raise LocalProtocolError("a dialog-creating request needs a From tag")
        target = _contact_uri(response, f"{code} response", None)
        if target is None:
            if code >= 200:
                raise DialogError(f"{code} to {request.method} without Contact (RFC 3261 §12.1.2)")
            target = request.uri  # early dialog without Contact: a later response may supply one
        local_contacts = request.contacts
        dialog = cls(
            call_id=request.call_id,
            local_party=_party(request.from_),
            remote_party=_party(response.to),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=_routes(response.record_routes[::-1]),
            secure=_is_sips(request.uri) if secure is None else secure,
            state=DialogState.CONFIRMED if code >= 200 else DialogState.EARLY,
            is_uac=True,
            local_target=str(local_contacts[0]) if local_contacts else None,
            initial=(request.method, request.cseq.seq),
        )
        log.debug("dialog %s created as UAC: %s", dialog.short_id, dialog.state.name)
        return dialog

    @classmethod
    def from_uas(
        cls,
        request: SipRequest,
        response: SipResponse,
        *,
        secure: bool | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> Dialog:
        """The UAS's dialog from the request and the 1xx/2xx it answers with its To tag (§12.1.1).

        ``rng`` draws the initial local CSeq when the UAS sends its first request (§12.2.1.1).
        """
        code = response.status_code
        to_tag = response.to.tag
        if not 101 <= code <= 299 or to_tag is None:
            raise LocalProtocolError(f"a {code} without To tag does not create a dialog")
        if response.call_id != request.call_id or response.cseq != request.cseq:
            raise LocalProtocolError("the response does not answer this request")
        target = _contact_uri(request, request.method, 400)
        if target is None:
            raise DialogError(f"{request.method} without Contact cannot create a dialog (RFC 3261 §8.1.1.8)", 400)
        local_contacts = response.contacts
        dialog = cls(
            call_id=request.call_id,
            local_party=_party(response.to),
            remote_party=_party(request.from_),
            local_seq=None,
            remote_seq=request.cseq.seq,
            remote_target=target,
            route_set=_routes(request.record_routes),
            secure=_is_sips(request.uri) if secure is None else secure,
            state=DialogState.CONFIRMED if code >= 200 else DialogState.EARLY,
            is_uac=False,
            local_target=str(local_contacts[0]) if local_contacts else None,
            initial=(request.method, request.cseq.seq),
            rng=rng,
        )
        log.debug("dialog %s created as UAS: %s", dialog.short_id, dialog.state.name)
        return dialog

    # -- identity ---------------------------------------------------------------------------------
    @property
    def local_tag(self) -> str:
        return self.local_party.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote_party.tag or ""

    @property
    def local_uri(self) -> Uri | None:
        return self.local_party.uri

    @property
    def remote_uri(self) -> Uri | None:
        return self.remote_party.uri

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def short_id(self) -> str:
        return f"{self.call_id[:8]}/{self.local_tag[:6]}"

    def __repr__(self) -> str:
        role = "UAC" if self.is_uac else "UAS"
        return f"<Dialog {role} {self.state.name} {self.id}>"

    def _set_state(self, state: DialogState) -> None:
        if state is not self.state:
            log.debug("dialog %s %s -> %s", self.short_id, self.state.name, state.name)
            self.state = state

    def confirm(self) -> None:
        """EARLY -> CONFIRMED; a UAS calls this when it sends the 2xx (§12.1.1)."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("the dialog is terminated")
        self._set_state(DialogState.CONFIRMED)

    def terminate(self) -> None:
        self._set_state(DialogState.TERMINATED)

    # -- sending ----------------------------------------------------------------------------------
    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        """RFC 3261 §12.2.1.1: loose routing keeps the target in the Request-URI."""
        routes = self.route_set
        if not routes:
            return str(self.remote_target), []
        first = routes[0].uri
        if isinstance(first, SipUri) and not first.has_param("lr"):
            # strict router: it goes into the Request-URI, stripped of what a Request-URI may not carry
            stripped = SipUri(
                host=first.host, user=first.user, password=first.password, port=first.port,
                params=[(k, v) for k, v in first.params if k.lower() not in _NOT_IN_REQUEST_URI],
                scheme=first.scheme,
            )
            return str(stripped), [str(r) for r in routes[1:]] + [f"<{self.remote_target}>"]
        return str(self.remote_target), [str(r) for r in routes]

    def _build(
        self,
        method: str,
        cseq: int,
        *,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]],
        via: str | None,
        branch: str | None,
        via_host: str | None,
        via_transport: str,
        contact: str | None,
        max_forwards: int,
    ) -> SipRequest:
        if body and content_type is None:
            raise LocalProtocolError("a body needs a content_type")
        if via is None and branch is not None:
            if via_host is None:
                raise LocalProtocolError("branch needs via_host")
            if not branch.startswith("z9hG4bK"):
                raise LocalProtocolError("an RFC 3261 branch starts with the magic cookie z9hG4bK")
            via = f"SIP/2.0/{via_transport.upper()} {via_host};branch={branch}"
        uri, routes = self._request_uri_and_routes()
        h = Headers()
        if via is not None:
            h.add("Via", via)
        h.add("Max-Forwards", str(max_forwards))
        for r in routes:
            h.add("Route", r)
        h.add("To", str(self.remote_party))
        h.add("From", str(self.local_party))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if contact is not None:
            h.add("Contact", contact)
        for name, value in headers:
            h.add(name, value)
        if content_type is not None:
            h.add("Content-Type", content_type)
        return SipRequest(method, uri, h, body)

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        via: str | None = None,
        branch: str | None = None,
        via_host: str | None = None,
        via_transport: str = "UDP",
        contact: str | None = None,
        max_forwards: int = 70,
    ) -> SipRequest:
        """A request within the dialog (RFC 3261 §12.2.1.1), with the next local CSeq.

        Via: give the whole value (``via``), or ``branch`` and ``via_host`` (``host:port``), or
        neither and let the transaction layer add it. Target refresh requests (re-INVITE,
        UPDATE, SUBSCRIBE, NOTIFY) carry ``contact`` or, by default, our Contact from the
        dialog-creating exchange. ACK and CANCEL are not built here: see :meth:`create_ack`
        (CANCEL copies the INVITE it cancels, §9.1).
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not a new in-dialog request; use create_ack() or the INVITE's CANCEL")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"cannot send {method}: the dialog is terminated")
        if self.state is DialogState.EARLY:
            if method == "INVITE":
                raise LocalProtocolError("no re-INVITE in an early dialog (RFC 3261 §14.1)")
            if method == "BYE" and not self.is_uac:
                raise LocalProtocolError("the callee must not send BYE in an early dialog (RFC 3261 §15)")
        if contact is None and method in TARGET_REFRESH_METHODS:
            contact = self.local_target
            if contact is None and method in ("INVITE", "UPDATE"):
                raise LocalProtocolError(f"{method} needs a Contact (RFC 3261 §8.1.1.8)")
        if self.local_seq is None:
            seq = int.from_bytes(self._rng(4), "big") & _INITIAL_CSEQ_MASK
        else:
            seq = self.local_seq + 1
        if seq > MAX_CSEQ:
            raise LocalProtocolError("local CSeq exhausted")
        request = self._build(method, seq, body=body, content_type=content_type, headers=headers, via=via,
                              branch=branch, via_host=via_host, via_transport=via_transport, contact=contact,
                              max_forwards=max_forwards)
        self.local_seq = seq
        return request

    def create_ack(
        self,
        invite_cseq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        via: str | None = None,
        branch: str | None = None,
        via_host: str | None = None,
        via_transport: str = "UDP",
        max_forwards: int = 70,
    ) -> SipRequest:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (RFC 3261 §13.2.2.4).

        Same routing as any in-dialog request, the INVITE's CSeq number, the local CSeq left
        alone. Pass the INVITE's credentials in ``headers`` (the ACK must carry them).
        """
        if not self.is_uac and invite_cseq != self.local_seq:
            raise LocalProtocolError("a UAS acknowledges only its own re-INVITE")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("cannot ACK: the dialog is terminated")
        return self._build("ACK", invite_cseq, body=body, content_type=content_type, headers=headers, via=via,
                           branch=branch, via_host=via_host, via_transport=via_transport, contact=None,
                           max_forwards=max_forwards)

    # -- receiving --------------------------------------------------------------------------------
    def receive_request(self, request: SipRequest) -> None:
        """Apply an in-dialog request (RFC 3261 §12.2.2) or raise :class:`DialogError`.

        Out-of-order CSeq -> status_hint 500; a request for another or a terminated dialog ->
        481. Target refresh requests replace the remote target with their Contact; BYE
        terminates the dialog. ACK and CANCEL carry the INVITE's CSeq and are not checked.
        """
        if dialog_id_for_request(request) != self.id:
            raise DialogError("request does not belong to this dialog", 481)
        if self.state is DialogState.TERMINATED:
            raise DialogError("dialog already terminated", 481)
        method = request.method
        if method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            raise DialogError(f"CSeq {seq} is lower than {self.remote_seq}: out of order", 500)
        if method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request, method, 400)
            if target is not None:
                self.remote_target = target
        self.remote_seq = seq
        if method == "BYE":
            self.terminate()

    def update_from_response(self, response: SipResponse) -> None:
        """Apply a response to a request this side sent in the dialog (RFC 3261 §12.1.2, §12.2.1.2).

        * 2xx to the dialog-creating request while EARLY: CONFIRMED, and on the UAC side the
          route set is recomputed from this 2xx (§13.2.2.4);
        * 1xx/2xx with Contact to it, or 2xx to a target refresh request: new remote target;
        * 3xx-6xx to the dialog-creating request while EARLY, 481 or 408 to any request, or
          a final response to our BYE: TERMINATED.
        """
        if dialog_id_for_response(response) != self.id:
            raise LocalProtocolError(f"{response!r} belongs to dialog {dialog_id_for_response(response)}, not {self.id}")
        if self.state is DialogState.TERMINATED:
            return
        code = response.status_code
        cseq = response.cseq
        initial = (cseq.method, cseq.seq) == (self._initial_method, self._initial_cseq)
        if code < 200:
            if initial and self.state is DialogState.EARLY:
                target = _contact_uri(response, f"{code} response", None)
                if target is not None:
                    self.remote_target = target
            return
        if cseq.method == "BYE" or code in (408, 481):
            self.terminate()
            return
        if code >= 300:
            if initial and self.state is DialogState.EARLY:
                self.terminate()
            return
        if initial and self.state is DialogState.EARLY:
            if self.is_uac:
                self.route_set = _routes(response.record_routes[::-1])
            self._set_state(DialogState.CONFIRMED)
        if initial or cseq.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(response, f"{code} response", None)
            if target is not None:
                self.remote_target = target


def _is_sips(uri: Uri) -> bool:
    return isinstance(uri, SipUri) and uri.secure


class DialogSet:
    """The dialogs of one user agent by :class:`DialogId`, with request/response matching."""

    __slots__ = ("_dialogs",)

    def __init__(self, dialogs: Iterable[Dialog] = ()) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}
        for d in dialogs:
            self.add(d)

    def add(self, dialog: Dialog) -> None:
        if dialog.id in self._dialogs:
            raise LocalProtocolError(f"dialog {dialog.id} already exists")
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def match_request(self, request: SipRequest) -> Dialog | None:
        """The dialog a received request belongs to (UAS view), if any."""
        try:
            did = dialog_id_for_request(request)
        except SipParseError:
            return None
        return self._dialogs.get(did) if did is not None else None

    def match_response(self, response: SipResponse) -> Dialog | None:
        """The dialog a received response belongs to (UAC view), if any."""
        try:
            did = dialog_id_for_response(response)
        except SipParseError:
            return None
        return self._dialogs.get(did) if did is not None else None

    def process_uac_response(self, request: SipRequest, response: SipResponse) -> Dialog | None:
        """Feed a response to a dialog-creating request we sent: update or create its dialog.

        Each new To tag in a 101-299 response creates a dialog (forking, §13.2.2.4). Returns
        the dialog the response belongs to, or None when it creates or matches none.
        """
        dialog = self.match_response(response)
        if dialog is not None:
            dialog.update_from_response(response)
        elif 101 <= response.status_code <= 299 and response.to.tag is not None:
            dialog = Dialog.from_uac(request, response)
            self.add(dialog)
        if response.status_code >= 300:
            # the INVITE failed: every early dialog it created ends with it (§12.3, §13.2.2.3)
            local_tag = request.from_.tag or ""
            for d in self:
                if d.call_id == request.call_id and d.local_tag == local_tag and d.state is DialogState.EARLY:
                    d.terminate()
        return dialog

    def prune(self) -> list[Dialog]:
        """Remove and return the terminated dialogs."""
        gone = [d for d in self._dialogs.values() if d.state is DialogState.TERMINATED]
        for d in gone:
            del self._dialogs[d.id]
        return gone
