--- Neovim 0.12+: ghost-text completions through vim.lsp.inline_completion (textDocument/inlineCompletion).
--- Requests are automatic while typing (Neovim debounces them itself).
local M = {}

--- Whether this Neovim has the inline completion client.
function M.available()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
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
  -- Accept keeps the key's normal meaning when no suggestion is shown.
  map(keymaps.accept, function()
    if not inline.get({ bufnr = bufnr }) then
      return keymaps.accept
    end
  end, "accept the suggestion", true)
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
end

return M
