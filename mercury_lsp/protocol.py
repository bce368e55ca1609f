"""pygls' protocol with answers for what it would drop: unreadable params, requests before initialize."""

from __future__ import annotations

import logging
from typing import Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcServerNotInitialized
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)

_ALLOWED_BEFORE_INITIALIZE = {types.INITIALIZE, types.EXIT}


@attrs.define
class UnreadableRequest:
    """A request whose params did not fit the method's type; it is answered with the error."""

    id: int | str
    method: str
    error: JsonRpcException
    jsonrpc: str = "2.0"


class MercuryProtocol(LanguageServerProtocol):
    """Every request gets a result or a JSON-RPC error; nothing is silently dropped."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            request_id = data.get("id")
            if "method" in data and isinstance(request_id, (int, str)) and not isinstance(request_id, bool):
                return UnreadableRequest(request_id, str(data["method"]), error)
            raise  # a notification or a response: pygls logs and drops it

    def handle_message(self, message: Any) -> None:
        if isinstance(message, UnreadableRequest):
            log.warning("request %s (%s) had unreadable params", message.id, message.method)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        method = getattr(message, "method", None)
        if self._workspace is None and method is not None and method not in _ALLOWED_BEFORE_INITIALIZE:
            if getattr(message, "id", None) is not None:
                error = JsonRpcServerNotInitialized(f"{method} before initialize")
                self._send_response(message.id, error=error.to_response_error())
            else:
                log.warning("notification %s before initialize is ignored", method)
            return
        super().handle_message(message)

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
