"""pygls' protocol with answers for what it would drop (frames that are not JSON-RPC, unreadable params, requests
before initialize or after shutdown) and without its memory of finished handlers."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from typing import Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcServerNotInitialized
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)

_ALLOWED_BEFORE_INITIALIZE = {types.INITIALIZE, types.EXIT}
PARSE_ERROR = -32700
INVALID_REQUEST = -32600


@attrs.define
class UnreadableRequest:
    """A request whose params did not fit the method's type; it is answered with the error."""

    id: int | str
    method: str
    error: JsonRpcException
    jsonrpc: str = "2.0"


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def envelope_problem(data: Any) -> str | None:
    """Why a decoded message is not a JSON-RPC 2.0 request, notification or response (None when it is one)."""
    if isinstance(data, list):
        return "Batches are not part of LSP; send one message per frame."
    if not isinstance(data, dict):
        return "A message must be a JSON object."
    if data.get("jsonrpc") != "2.0":
        return 'A message must carry "jsonrpc": "2.0".'
    if "id" in data and not _is_id(data["id"]):
        return "A message id must be an integer or a string."
    if "method" in data:
        if not isinstance(data["method"], str):
            return "A method name must be a string."
        return None
    if "id" not in data or ("result" in data) == ("error" in data):
        return "A message without a method must be a response: an id and either a result or an error."
    return None


class MercuryProtocol(LanguageServerProtocol):
    """Every request gets a result or a JSON-RPC error; nothing is silently dropped, nothing finished is kept."""

    # -- frames (called by mercury_lsp.transport) -----------------------------------------------------------------
    def receive_frame(self, body: bytes) -> None:
        """One frame's body: parsed, checked as JSON-RPC, handed on; what fails is answered -32700 or -32600."""
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            self.reject_frame("The message body is not UTF-8.")
            return
        except RecursionError:
            self.reject_frame("The message body is nested too deeply.")
            return
        except ValueError as error:  # JSONDecodeError, NaN, an integer longer than Python converts
            self.reject_frame(f"The message body is not JSON ({str(error).split(';')[0]}).")
            return
        problem = envelope_problem(data)
        if problem is not None:
            request_id = data.get("id") if isinstance(data, dict) and _is_id(data.get("id")) else None
            if isinstance(data, dict) and "method" not in data and request_id is not None:
                log.warning("dropped a malformed response: %s", problem)  # answering a response would confuse
                return
            self._send_error(request_id, INVALID_REQUEST, problem)
            return
        try:
            message = self.structure_message(data)
        except JsonRpcException as error:  # a notification or response pygls cannot read: logged and dropped
            log.warning("dropped %s: %s", data.get("method", "a response"), error)
            return
        try:
            self.handle_message(message)
        except Exception:  # a handler's own failure is answered by pygls; this is anything around it
            log.exception("failed to handle %s", data.get("method", "a response"))

    def reject_frame(self, reason: str) -> None:
        """Answer a frame that could not be read at all (its id is unknown: null)."""
        self._send_error(None, PARSE_ERROR, reason)

    def _send_error(self, request_id: int | str | None, code: int, message: str) -> None:
        # A plain dict: lsprotocol's converter would leave out an id of None, and JSON-RPC wants "id": null.
        self._send_data({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    # -- messages -------------------------------------------------------------------------------------------------
    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            request_id = data.get("id")
            if "method" in data and _is_id(request_id):
                return UnreadableRequest(request_id, str(data["method"]), error)
            raise  # a notification or a response: pygls logs and drops it

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        request_id = getattr(message, "id", None)
        if self._shutdown and method is not None and method != types.EXIT:
            if request_id is not None:  # LSP: every request after shutdown is answered InvalidRequest
                self._send_error(request_id, INVALID_REQUEST, f"{method} after shutdown: the server is stopping.")
            return
        if isinstance(message, UnreadableRequest):
            log.warning("request %s (%s) had unreadable params", message.id, message.method)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        if self._workspace is None and method is not None and method not in _ALLOWED_BEFORE_INITIALIZE:
            if request_id is not None:
                error = JsonRpcServerNotInitialized(f"{method} before initialize")
                self._send_response(request_id, error=error.to_response_error())
            else:
                log.warning("notification %s before initialize is ignored", method)
            return
        super().handle_message(message)

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, args: Any = None, kwargs: Any = None) -> None:
        # pygls keeps the future of every notification and every nested handler call under a fresh id and only
        # removes those of client requests: 20,000 didChange notifications left 20,000 finished futures behind.
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget(msg_id, done))

    def _forget(self, msg_id: Any, future: Future) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    # Documents live in the server's own store (mercury_lsp.documents), which clamps positions
    # instead of raising; pygls' copy would only double the work on every keystroke.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        yield self.fm.features[types.TEXT_DOCUMENT_DID_OPEN], (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        yield self.fm.features[types.TEXT_DOCUMENT_DID_CHANGE], (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        yield self.fm.features[types.TEXT_DOCUMENT_DID_CLOSE], (params,), None
