--- A next-edit proposal drawn as a diff at its place: the text it replaces struck through, the new text beside
--- it (inline for one line, as lines below for more), and a hint on the cursor's line naming the proposal's
--- line when the proposal is on another line or out of sight.
local M = {}

M.namespace = vim.api.nvim_create_namespace("mercury.next_edit")
local HINT_NAMESPACE = vim.api.nvim_create_namespace("mercury.next_edit.hint")

---@class mercury.Proposal
---@field start_row integer 0-based
---@field start_col integer byte column
---@field end_row integer
---@field end_col integer
---@field text string what replaces the range

--- The groups, given only where a colorscheme has not: the removed text keeps DiffDelete's colors, struck through.
function M.define_highlights()
  local removed = vim.api.nvim_get_hl(0, { name = "DiffDelete", link = false })
  removed.strikethrough, removed.default = true, true
  vim.api.nvim_set_hl(0, "MercuryNextEditRemoved", removed)
  vim.api.nvim_set_hl(0, "MercuryNextEditAdded", { link = "DiffAdd", default = true })
  vim.api.nvim_set_hl(0, "MercuryNextEditHint", { link = "DiagnosticVirtualTextHint", default = true })
end

M.define_highlights()
-- A colorscheme clears every group first.
vim.api.nvim_create_autocmd("ColorScheme", {
  group = vim.api.nvim_create_augroup("mercury.next_edit_view", { clear = true }),
  desc = "mercury: next-edit diff colors",
  callback = M.define_highlights,
})

--- Whether the proposal is drawn in one line: it replaces text within a line by text without a line break.
---@param proposal mercury.Proposal
---@return boolean
function M.is_inline(proposal)
  return proposal.start_row == proposal.end_row and not proposal.text:find("\n", 1, true)
end

--- The lines the proposal's rows become once it is applied.
---@param bufnr integer
---@param proposal mercury.Proposal
---@return string[]
function M.lines_after(bufnr, proposal)
  local first = vim.api.nvim_buf_get_lines(bufnr, proposal.start_row, proposal.start_row + 1, false)[1] or ""
  local last = vim.api.nvim_buf_get_lines(bufnr, proposal.end_row, proposal.end_row + 1, false)[1] or ""
  local joined = first:sub(1, proposal.start_col) .. proposal.text .. last:sub(proposal.end_col + 1)
  return vim.split(joined, "\n", { plain = true })
end

--- The hint's words: "next edit on line 12: <Tab> applies, <Esc> dismisses" (keys left out when unmapped).
---@param proposal mercury.Proposal
---@param keys { apply: string|false, dismiss: string|false }
---@return string
function M.hint_text(proposal, keys)
  local actions = {}
  if keys.apply then
    actions[#actions + 1] = keys.apply .. " applies"
  end
  if keys.dismiss then
    actions[#actions + 1] = keys.dismiss .. " dismisses"
  end
  local where = ("next edit on line %d"):format(proposal.start_row + 1)
  return #actions == 0 and where or where .. ": " .. table.concat(actions, ", ")
end

--- Whether the cursor's line needs the hint: the proposal starts on another line, or none of it is in view.
---@param proposal mercury.Proposal
---@param cursor_row integer 0-based
---@param top_row integer 0-based first row in view
---@param bottom_row integer 0-based last row in view
---@return boolean
function M.needs_hint(proposal, cursor_row, top_row, bottom_row)
  local in_view = proposal.end_row >= top_row and proposal.start_row <= bottom_row
  return proposal.start_row ~= cursor_row or not in_view
end

--- Draw the proposal's diff in `bufnr`, replacing any drawn before.
---@param bufnr integer
---@param proposal mercury.Proposal
function M.draw(bufnr, proposal)
  vim.api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  local replaces = proposal.start_row ~= proposal.end_row or proposal.start_col ~= proposal.end_col
  if replaces then
    vim.api.nvim_buf_set_extmark(bufnr, M.namespace, proposal.start_row, proposal.start_col, {
      end_row = proposal.end_row, end_col = proposal.end_col, hl_group = "MercuryNextEditRemoved",
    })
  end
  if M.is_inline(proposal) then
    if proposal.text ~= "" then
      vim.api.nvim_buf_set_extmark(bufnr, M.namespace, proposal.end_row, proposal.end_col, {
        virt_text = { { proposal.text, "MercuryNextEditAdded" } }, virt_text_pos = "inline",
      })
    end
    return
  end
  local virt_lines = {}
  for _, line in ipairs(M.lines_after(bufnr, proposal)) do
    virt_lines[#virt_lines + 1] = { { line, "MercuryNextEditAdded" } }
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.namespace, proposal.end_row, 0, { virt_lines = virt_lines })
end

--- Put the hint at the end of the cursor's line in `win` when that line needs it; remove it otherwise.
---@param bufnr integer
---@param win integer a window showing `bufnr`
---@param proposal mercury.Proposal
---@param keys { apply: string|false, dismiss: string|false }
function M.place_hint(bufnr, win, proposal, keys)
  vim.api.nvim_buf_clear_namespace(bufnr, HINT_NAMESPACE, 0, -1)
  local cursor_row = vim.api.nvim_win_get_cursor(win)[1] - 1
  local top, bottom = vim.fn.line("w0", win) - 1, vim.fn.line("w$", win) - 1
  if M.needs_hint(proposal, cursor_row, top, bottom) then
    vim.api.nvim_buf_set_extmark(bufnr, HINT_NAMESPACE, cursor_row, 0, {
      virt_text = { { "  " .. M.hint_text(proposal, keys), "MercuryNextEditHint" } }, virt_text_pos = "eol",
    })
  end
end

--- The hint drawn in `bufnr` now, "" when none.
---@param bufnr integer
---@return string
function M.shown_hint(bufnr)
  local mark = vim.api.nvim_buf_get_extmarks(bufnr, HINT_NAMESPACE, 0, -1, { details = true, limit = 1 })[1]
  return mark and vim.trim(mark[4].virt_text[1][1]) or ""
end

--- Remove the diff and the hint.
---@param bufnr integer
function M.clear(bufnr)
  vim.api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  vim.api.nvim_buf_clear_namespace(bufnr, HINT_NAMESPACE, 0, -1)
end

return M
