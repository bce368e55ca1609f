--- Asking again once the engine can answer.
---
--- While the engine loads, the server answers at once with nothing, and Neovim asks again only when the
--- cursor moves: the suggestion for the keys typed meanwhile would never show. After `:Mercury enable` the
--- server reports `loading` and reconnects to its engine only when asked for something, so the statusline
--- would stay `loading` until the next keystroke.
local M = {}

local function state(report)
  return type(report) == "table" and report.state or nil
end

--- The buffer to ask in: the current one when the client is attached to it, else one it is attached to.
---@param client vim.lsp.Client
---@return integer|nil
local function attached_buffer(client)
  local current = vim.api.nvim_get_current_buf()
  if client.attached_buffers[current] then
    return current
  end
  return next(client.attached_buffers)
end

--- Send one completion request at the cursor and ignore the answer: the server connects to its engine.
---@param client vim.lsp.Client
function M.wake_engine(client)
  local bufnr = attached_buffer(client)
  if bufnr == nil then
    return
  end
  local params
  if bufnr == vim.api.nvim_get_current_buf() then
    params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  else
    params = { textDocument = vim.lsp.util.make_text_document_params(bufnr), position = { line = 0, character = 0 } }
  end
  params.context = { triggerKind = 1 }
  client:request("textDocument/completion", params, function() end, bufnr)
end

--- React to a `mercury/status` report that followed `previous`.
---@param previous table|nil
---@param report table
---@param client vim.lsp.Client|nil
function M.after_status(previous, report, client)
  if client == nil then
    return
  end
  if state(report) == "ready" and state(previous) ~= "ready" then
    local bufnr = attached_buffer(client)
    if bufnr ~= nil then
      require("mercury.inline").request_again(bufnr)
    end
  elseif state(previous) == "disabled" and state(report) == "loading" then
    M.wake_engine(client)
  end
end

return M
