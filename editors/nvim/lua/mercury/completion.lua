--- Neovim 0.10/0.11: completions through textDocument/completion in the built-in popup menu.
local M = {}

local function first_line(text)
  return (text:gsub("\n.*", ""))
end

--- The popup inserts a single line: show the infill's first line, not just its first word.
---@param item lsp.CompletionItem
---@return table
function M.popup_item(item)
  local text = item.textEdit and item.textEdit.newText or item.insertText
  if type(text) ~= "string" or item.insertTextFormat == 2 then
    return {}
  end
  return { word = first_line(text), abbr = first_line(text) }
end

--- After an accepted item, replace the line the popup inserted with the whole multi-line infill.
---@param client vim.lsp.Client
---@param bufnr integer
---@param completed_item table v:completed_item
---@param reason string|nil v:event.reason (nil before Neovim 0.11)
function M.expand_accepted(client, bufnr, completed_item, reason)
  if reason ~= nil and reason ~= "accept" then
    return
  end
  local lsp_data = vim.tbl_get(completed_item or {}, "user_data", "nvim", "lsp") or {}
  local item = lsp_data.completion_item
  -- Snippets are expanded by Neovim itself.
  if lsp_data.client_id ~= client.id or type(item) ~= "table" or item.insertTextFormat == 2 then
    return
  end
  local text_edit = item.textEdit
  local range = text_edit and (text_edit.range or text_edit.insert)
  if not range or text_edit.newText == completed_item.word then
    return
  end
  local start_col = vim.lsp.util._get_line_byte_from_position(bufnr, range.start, client.offset_encoding)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local lines = vim.split(text_edit.newText, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, range.start.line, start_col, row - 1, col, lines)
  local last_col = (#lines == 1 and start_col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { range.start.line + #lines, last_col })
end

---@param client vim.lsp.Client
---@param bufnr integer
---@param keymaps table
function M.attach(client, bufnr, keymaps)
  vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = false, convert = M.popup_item })
  -- The infill is usually the only item: show it in the menu rather than typing it at once.
  vim.bo[bufnr].completeopt = "menu,menuone,noinsert"
  vim.api.nvim_create_autocmd("CompleteDone", {
    group = vim.api.nvim_create_augroup(("mercury.completion.%d"):format(bufnr), { clear = true }),
    buffer = bufnr,
    desc = "mercury: insert the whole multi-line completion",
    callback = function()
      M.expand_accepted(client, bufnr, vim.v.completed_item, vim.v.event.reason)
    end,
  })
  if keymaps.trigger then
    vim.keymap.set("i", keymaps.trigger, vim.lsp.completion.get, { buffer = bufnr, desc = "mercury: complete" })
  end
end

return M
