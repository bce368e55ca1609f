--- Next edits against the real mercury-lsp and a real engine whose scripted model knows the file after a rename:
--- the rename typed on one line brings the proposal for another, drawn as a diff with a hint naming its line;
--- the apply key puts it in, undo brings it back, the dismiss key hides it, and typing clears it.
--- Run by tests/editors/test_neovim_next_edit.py, which sets the MERCURY_TEST_* variables.
local h = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "harness.lua"))

--- A file's text as buffer lines (the text ends with a line break).
local function lines_of(variable)
  local text = assert(vim.env[variable], variable .. " must be set")
  local lines = vim.split(text, "\n", { plain = true })
  assert(table.remove(lines) == "", variable .. " must end with a line break")
  return lines
end

local ENGINE_URL = assert(vim.env.MERCURY_TEST_ENGINE_URL, "MERCURY_TEST_ENGINE_URL must name the engine")
local BEFORE, EDITED, AFTER = lines_of("MERCURY_TEST_BEFORE"), lines_of("MERCURY_TEST_EDITED"), lines_of("MERCURY_TEST_AFTER")
-- The user's rename, typed in normal mode: it turns BEFORE into EDITED (checked below).
local RENAME_KEYS = "2G^ciwitem<Esc>"

vim.opt.runtimepath:append(h.plugin_dir)
require("mercury").setup({
  settings = { engineUrl = ENGINE_URL, autoStart = false, nextEdit = true },
  next_edit = { debounce_ms = 50 },
})
local next_edit = require("mercury.next_edit")
local view = require("mercury.next_edit_view")

local file = vim.fs.joinpath(vim.fn.tempname(), "pkg", "calc.py")
vim.fn.mkdir(vim.fs.dirname(file), "p")
vim.fn.writefile(BEFORE, file)
local bufnr, client

local function buffer_lines()
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- The server's answer, asked directly at the cursor.
local function server_edits()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.textDocument.version = vim.lsp.util.buf_versions[bufnr]
  local response = assert(client:request_sync(next_edit.METHOD, params, 30000, bufnr), "no answer")
  assert(response.err == nil, vim.inspect(response.err))
  return response.result.edits
end

local function diff_marks()
  return vim.api.nvim_buf_get_extmarks(bufnr, view.namespace, 0, -1, { details = true })
end

local function wait_for_proposal()
  return h.wait_for("a next-edit proposal", function()
    return next_edit.shown(bufnr)
  end, 30000)
end

h.test("before any edit the server, once its engine is ready, proposes nothing", function()
  vim.cmd.edit(file)
  bufnr = vim.api.nvim_get_current_buf()
  client = h.wait_for("the mercury client to attach", function()
    local c = vim.lsp.get_clients({ bufnr = bufnr, name = "mercury" })[1]
    return c and c.initialized and c
  end, 30000)
  -- A request starts the server's engine connection; nothing was edited yet, so nothing is proposed.
  h.wait_for("the engine to be ready", function()
    local edits = server_edits()
    local last = require("mercury.status").last
    return last and last.state == "ready" and #edits == 0
  end, 60000)
  h.eq(nil, next_edit.shown(bufnr), "no proposal before an edit")
end)

h.test("a rename on one line shows the proposal for another as a diff, with a hint naming its line", function()
  h.feed(RENAME_KEYS)
  local proposal = wait_for_proposal()
  h.eq(EDITED, buffer_lines(), "the buffer after the typed rename")
  local edit = server_edits()[1]
  h.eq({ range = edit.range, text = edit.text }, { range = proposal.edit.range, text = proposal.text }, "shown edit")
  h.truthy(edit.range.start.line ~= vim.api.nvim_win_get_cursor(0)[1] - 1, "the proposal is on another line")
  local marks = diff_marks()
  local removed = vim.tbl_filter(function(mark)
    return mark[4].hl_group == "MercuryNextEditRemoved"
  end, marks)[1]
  h.truthy(removed, "a struck range among " .. vim.inspect(marks))
  h.eq({ proposal.start_row, proposal.start_col, proposal.end_row, proposal.end_col },
    { removed[2], removed[3], removed[4].end_row, removed[4].end_col }, "the struck range")
  local added = vim.tbl_filter(function(mark)
    return mark[4].virt_text ~= nil
  end, marks)[1]
  h.eq({ { edit.text, "MercuryNextEditAdded" } }, added[4].virt_text, "the new text beside it")
  h.eq(("next edit on line %d: <Tab> applies, <Esc> dismisses"):format(edit.range.start.line + 1),
    view.shown_hint(bufnr), "the hint on the cursor's line")
end)

h.test("<Tab> in normal mode jumps to the proposal and applies it", function()
  local proposal = assert(next_edit.shown(bufnr))
  h.feed("<Tab>")
  h.wait_for("the applied edit", function()
    return vim.deep_equal(buffer_lines(), AFTER)
  end, 10000)
  h.eq(proposal.start_row + 1, vim.api.nvim_win_get_cursor(0)[1], "the cursor on the edited line")
  h.eq({}, diff_marks(), "no diff left")
  h.eq("", view.shown_hint(bufnr), "no hint left")
  h.eq("", vim.fn.maparg("<Tab>", "n"), "<Tab> is unmapped again")
end)

h.test("undo brings the proposal back and <Esc> dismisses it for good", function()
  h.feed("u")
  wait_for_proposal()
  h.eq(EDITED, buffer_lines(), "the buffer after undo")
  h.feed("<Esc>")
  h.wait_for("the proposal to go", function()
    return next_edit.shown(bufnr) == nil
  end, 10000)
  h.eq({}, diff_marks(), "no diff left")
  h.eq("", vim.fn.maparg("<Esc>", "n"), "<Esc> is unmapped again")
  vim.wait(500) -- ten times the debounce: it does not come back unasked
  h.eq(nil, next_edit.shown(bufnr), "still dismissed")
  h.eq(EDITED, buffer_lines(), "the buffer untouched")
end)

h.test("typing clears a shown proposal", function()
  next_edit.request(bufnr)
  wait_for_proposal()
  h.feed("A  # sum")
  h.wait_for("the proposal to go while typing", function()
    return next_edit.shown(bufnr) == nil and #diff_marks() == 0
  end, 10000)
  h.leave_insert_mode()
end)

h.run(function()
  h.stop_clients("mercury")
end)
