--- Neovim 0.12+: ghost-text completions through vim.lsp.inline_completion (textDocument/inlineCompletion).
--- Requests are automatic while typing (Neovim debounces them itself); the keys accept all of a suggestion,
--- its next word or its next line, cycle through candidates and hide it.
local accept = require("mercury.accept")

local M = {}

local NAMESPACE = "nvim.lsp.inline_completion"

--- Whether this Neovim has the inline completion client.
function M.available()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

--- Whether a suggestion with something left to insert is drawn in `bufnr` (Neovim draws it as an extmark).
---@param bufnr integer
---@return boolean
function M.shown(bufnr)
  local ns = vim.api.nvim_get_namespaces()[NAMESPACE]
  if ns == nil then
    return false
  end
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    local details = mark[4]
    for _, chunk in ipairs(details.virt_text or {}) do
      if chunk[1] ~= "" then
        return true
      end
    end
    if details.virt_lines and #details.virt_lines > 0 then
      return true
    end
  end
  return false
end

--- Insert `part` of `item` at the cursor, or return false when the item no longer applies there.
---@param bufnr integer
---@param item table vim.lsp.inline_completion.Item
---@param part "all"|"word"|"line"
---@return boolean
function M.accept_item(bufnr, item, part)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) ~= bufnr then
    win = vim.fn.bufwinid(bufnr)
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(win))
  local line = vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ""
  local insertion = accept.insertion(item, part, line, row - 1, col)
  if insertion == nil then
    return false
  end
  accept.apply(bufnr, win, insertion)
  if insertion.complete and item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      client:exec_cmd(item.command, { bufnr = bufnr })
    end
  end
  return true
end

--- An insert-mode expression mapping that accepts `part` of the shown suggestion, and is the key itself
--- while the popup menu is open, when nothing is shown, or when the shown suggestion has gone stale.
---@param bufnr integer
---@param lhs string
---@param part "all"|"word"|"line"
---@return fun(): string
function M.acceptor(bufnr, lhs, part)
  local key = vim.keycode(lhs)
  return function()
    if vim.fn.pumvisible() == 1 or not M.shown(bufnr) then
      return key
    end
    local taken = vim.lsp.inline_completion.get({
      bufnr = bufnr,
      on_accept = function(item)
        if not M.accept_item(bufnr, item, part) then
          -- Typed past it: the key does what it does without a suggestion, before any key typed since.
          vim.api.nvim_feedkeys(key, "ni", false)
        end
      end,
    })
    return taken and "" or key
  end
end

--- Ask again at the cursor, as a keystroke would: after the engine became ready the answers given while it
--- loaded were empty, and Neovim asks only when the cursor moves.
---@param bufnr integer
function M.request_again(bufnr)
  if not (M.available() and vim.lsp.inline_completion.is_enabled({ bufnr = bufnr })) then
    return
  end
  if not vim.startswith(vim.api.nvim_get_mode().mode, "i") or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  -- Neovim's inline completion listens in this group; pcall: it is an internal name.
  pcall(vim.api.nvim_exec_autocmds, "CursorMovedI",
    { group = ("nvim.lsp.inline_completion:%d"):format(bufnr), buffer = bufnr, modeline = false })
end

---@param bufnr integer
---@param keymaps table
function M.attach(bufnr, keymaps)
  local inline = vim.lsp.inline_completion
  inline.enable(true, { bufnr = bufnr })
  local function map(lhs, rhs, desc, expr)
    if lhs then
      vim.keymap.set("i", lhs, rhs, { buffer = bufnr, desc = "mercury: " .. desc, expr = expr })
    end
  end
  for name, part in pairs({ accept = "all", accept_word = "word", accept_line = "line" }) do
    local lhs = keymaps[name]
    if lhs then
      map(lhs, M.acceptor(bufnr, lhs, part), ("accept the %s of the suggestion"):format(
        part == "all" and "whole" or "next " .. part), true)
    end
  end
  map(keymaps.next, function()
    inline.select({ bufnr = bufnr, count = 1 })
  end, "next suggestion")
  map(keymaps.prev, function()
    inline.select({ bufnr = bufnr, count = -1 })
  end, "previous suggestion")
  -- There is no dismiss in the API; switching off and on again clears the shown suggestion.
  map(keymaps.dismiss, function()
    inline.enable(false, { bufnr = bufnr })
    inline.enable(true, { bufnr = bufnr })
  end, "dismiss the suggestion")
  require("mercury.highlight").ensure_ghost_text_visible()
end

return M
