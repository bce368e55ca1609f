--- Next-edit suggestions (Neovim 0.11+): after an edit, ask mercury-lsp where the matching edit goes (Copilot's
--- `textDocument/copilotInlineEdit`), draw the answer as a diff at its place, and map the keys that apply or
--- dismiss it for as long as it is shown. Asked for only while the server's `nextEdit` setting is on.
local view = require("mercury.next_edit_view")

local M = {}

M.METHOD = "textDocument/copilotInlineEdit"

---@class mercury.NextEditState
---@field timer uv.uv_timer_t|nil the debounce timer
---@field request { client: vim.lsp.Client, id: integer }|nil the request in flight
---@field asked_tick integer|nil the changedtick last asked about
---@field proposal mercury.ShownProposal|nil
---@field saved_keys table<string, table|false>|nil buffer-local mappings the keys shadow while shown

---@class mercury.ShownProposal: mercury.Proposal
---@field edit { range: lsp.Range, text: string, command: lsp.Command|nil } the server's edit
---@field encoding string the client's position encoding
---@field tick integer the changedtick it was proposed for
---@field client_id integer

---@type table<integer, mercury.NextEditState>
local buffers = {}

local function state(bufnr)
  buffers[bufnr] = buffers[bufnr] or {}
  return buffers[bufnr]
end

local function options()
  return require("mercury").options
end

--- Whether this Neovim can show next edits.
function M.available()
  return vim.fn.has("nvim-0.11") == 1
end

--- Whether next edits are asked for: the server's `nextEdit` setting, from setup() or update_settings().
function M.enabled()
  local opts = options()
  return opts ~= nil and opts.settings.nextEdit == true
end

--- The proposal shown in `bufnr`, nil when none.
---@param bufnr integer
---@return mercury.ShownProposal|nil
function M.shown(bufnr)
  return buffers[bufnr] and buffers[bufnr].proposal
end

local function keys()
  local next_edit = options().next_edit
  return { apply = next_edit.apply, dismiss = next_edit.dismiss }
end

--- The proposal an LSP edit makes in `bufnr`, its range also in byte columns for drawing.
---@param bufnr integer
---@param edit { range: lsp.Range, text: string, command: lsp.Command|nil }
---@param encoding string
---@return mercury.ShownProposal
function M.proposal(bufnr, edit, encoding)
  local function byte_col(position)
    local line = vim.api.nvim_buf_get_lines(bufnr, position.line, position.line + 1, false)[1] or ""
    return vim.str_byteindex(line, encoding, position.character, false) -- past the end: the line's length
  end
  local start, finish = edit.range.start, edit.range["end"]
  return {
    start_row = start.line, start_col = byte_col(start), end_row = finish.line, end_col = byte_col(finish),
    text = edit.text, edit = edit, encoding = encoding,
  }
end

local function unmap_keys(bufnr, st)
  for lhs, previous in pairs(st.saved_keys or {}) do
    pcall(vim.keymap.del, "n", lhs, { buffer = bufnr })
    if previous then
      vim.api.nvim_buf_call(bufnr, function()
        vim.fn.mapset("n", false, previous)
      end)
    end
  end
  st.saved_keys = nil
end

--- Remove the shown proposal, its diff and its keys.
---@param bufnr integer
function M.clear(bufnr)
  local st = buffers[bufnr]
  if st == nil then
    return
  end
  st.proposal = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    view.clear(bufnr)
    unmap_keys(bufnr, st)
  end
end

local function cancel_request(st)
  local request = st.request
  st.request = nil
  if request then
    request.client:cancel_request(request.id)
  end
end

--- Hide the proposal and forget the question in flight: a dismissed edit does not come straight back.
---@param bufnr integer
function M.dismiss(bufnr)
  local st = state(bufnr)
  cancel_request(st)
  if st.timer then
    st.timer:stop()
  end
  M.clear(bufnr)
end

--- Jump to the shown proposal and apply it; the server's command, if any, runs after.
---@param bufnr integer
function M.apply(bufnr)
  local proposal = M.shown(bufnr)
  if proposal == nil then
    return
  end
  M.clear(bufnr)
  if vim.b[bufnr].changedtick ~= proposal.tick then
    return -- the text changed under it
  end
  vim.cmd("normal! m'") -- <C-o> returns to where the key was pressed
  vim.lsp.util.apply_text_edits({ { range = proposal.edit.range, newText = proposal.text } }, bufnr, proposal.encoding)
  -- The cursor on the last character of the new text (at its start when it deleted only).
  local lines = vim.split(proposal.text, "\n", { plain = true })
  local end_col = (#lines == 1 and proposal.start_col or 0) + #lines[#lines]
  local row = proposal.start_row + #lines - 1
  local col = (#lines > 1 or end_col > proposal.start_col) and math.max(end_col - 1, 0) or proposal.start_col
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  local command = proposal.edit.command
  local client = type(command) == "table" and vim.lsp.get_client_by_id(proposal.client_id)
  if client then
    client:exec_cmd(command, { bufnr = bufnr })
  end
end

local function map_keys(bufnr, st)
  st.saved_keys = {}
  for name, run in pairs({ apply = M.apply, dismiss = M.dismiss }) do
    local lhs = keys()[name]
    if lhs then
      local previous = vim.fn.maparg(lhs, "n", false, true)
      st.saved_keys[lhs] = previous.buffer == 1 and previous or false
      vim.keymap.set("n", lhs, function()
        run(bufnr)
      end, { buffer = bufnr, desc = ("mercury: %s the next edit"):format(name) })
    end
  end
end

---@param bufnr integer
---@param proposal mercury.ShownProposal
local function show(bufnr, proposal)
  M.clear(bufnr)
  local st = state(bufnr)
  st.proposal = proposal
  view.draw(bufnr, proposal)
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    view.place_hint(bufnr, win, proposal, keys())
  end
  map_keys(bufnr, st)
end

--- Ask the server now for the next edit at the cursor of the current window, which must show `bufnr`.
---@param bufnr integer
function M.request(bufnr)
  local st = state(bufnr)
  cancel_request(st)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = "mercury" })[1]
  local win = vim.api.nvim_get_current_win()
  if client == nil or not M.enabled() or vim.api.nvim_win_get_buf(win) ~= bufnr then
    return
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.textDocument.version = vim.lsp.util.buf_versions[bufnr]
  local tick = vim.b[bufnr].changedtick
  st.asked_tick = tick
  local id
  local function answered(err, result)
    if st.request and st.request.id == id then
      st.request = nil
    end
    if err or type(result) ~= "table" or not vim.api.nvim_buf_is_valid(bufnr) or vim.b[bufnr].changedtick ~= tick then
      return -- failed, cancelled, or about text that is gone
    end
    local edit = (result.edits or {})[1] -- several edits are alternatives: show the first
    if edit ~= nil then
      local proposal = M.proposal(bufnr, edit, client.offset_encoding)
      proposal.tick, proposal.client_id = tick, client.id
      show(bufnr, proposal)
    end
  end
  local sent
  sent, id = client:request(M.METHOD, params, answered, bufnr)
  if sent then
    st.request = { client = client, id = id }
  end
end

--- Ask after `next_edit.debounce_ms`, unless another edit comes first, or nothing changed since the last question.
---@param bufnr integer
function M.schedule(bufnr)
  local st = state(bufnr)
  if not M.enabled() or st.asked_tick == vim.b[bufnr].changedtick then
    return
  end
  st.timer = st.timer or vim.uv.new_timer()
  st.timer:stop()
  st.timer:start(options().next_edit.debounce_ms, 0, vim.schedule_wrap(function()
    -- Back in insert mode meanwhile: leaving it asks again.
    if vim.api.nvim_buf_is_valid(bufnr) and not vim.startswith(vim.api.nvim_get_mode().mode, "i") then
      M.request(bufnr)
    end
  end))
end

local function forget(bufnr)
  local st = buffers[bufnr]
  if st == nil then
    return
  end
  M.dismiss(bufnr)
  if st.timer then
    st.timer:close()
  end
  buffers[bufnr] = nil
end

--- Watch `bufnr`: ask after each edit, clear a proposal the text changed under, keep the hint on the cursor's line.
---@param bufnr integer
function M.attach(bufnr)
  if not M.available() then
    return
  end
  local group = vim.api.nvim_create_augroup(("mercury.next_edit.%d"):format(bufnr), { clear = true })
  local function clear_if_changed()
    local proposal = M.shown(bufnr)
    if proposal and vim.b[bufnr].changedtick ~= proposal.tick then
      M.clear(bufnr)
    end
  end
  vim.api.nvim_create_autocmd({ "InsertLeave", "TextChanged" }, {
    group = group, buffer = bufnr, desc = "mercury: ask for the next edit",
    callback = function()
      clear_if_changed()
      M.schedule(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd("TextChangedI", {
    group = group, buffer = bufnr, desc = "mercury: clear a stale next edit", callback = clear_if_changed,
  })
  vim.api.nvim_create_autocmd({ "CursorMoved", "WinScrolled" }, {
    group = group, buffer = bufnr, desc = "mercury: keep the next-edit hint on the cursor's line",
    callback = function()
      local proposal = M.shown(bufnr)
      if proposal and vim.api.nvim_get_current_buf() == bufnr then
        view.place_hint(bufnr, vim.api.nvim_get_current_win(), proposal, keys())
      end
    end,
  })
  vim.api.nvim_create_autocmd("BufUnload", {
    group = group, buffer = bufnr, once = true,
    callback = function()
      forget(bufnr)
    end,
  })
end

return M
