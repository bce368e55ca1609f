--- Plugin tests that need no server: options, settings encoding, statusline, commands, checkhealth.
--- Run: nvim --headless -u NONE -i NONE -n -c "luafile editors/nvim/tests/unit_test.lua"
local h = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "harness.lua"))
vim.opt.runtimepath:prepend(h.plugin_dir)

local config = require("mercury.config")
local status = require("mercury.status")

local notified = {}
vim.notify = function(message, level)
  notified[#notified + 1] = { message = message, level = level }
end

h.test("defaults start mercury-lsp with every completion path on", function()
  local opts = assert(config.resolve(nil))
  h.eq({ "mercury-lsp" }, opts.cmd, "cmd")
  h.eq(true, opts.inline_completion, "inline_completion")
  h.eq("<Tab>", opts.keymaps.accept, "accept key")
end)

h.test("user options override defaults and lists replace", function()
  local opts = assert(config.resolve({ cmd = { "/opt/m/bin/mercury-lsp", "--log" }, root_markers = { ".hg" },
    keymaps = { accept = false }, settings = { maxTokens = 32 } }))
  h.eq({ "/opt/m/bin/mercury-lsp", "--log" }, opts.cmd, "cmd")
  h.eq({ ".hg" }, opts.root_markers, "root_markers")
  h.eq(false, opts.keymaps.accept, "accept key")
  h.eq("<M-]>", opts.keymaps.next, "next key")
  h.eq(32, opts.settings.maxTokens, "maxTokens")
end)

h.test("bad options get one sentence each", function()
  local cases = {
    { { cmd = "mercury-lsp" }, "option 'cmd' must be a non-empty list of strings, like { \"mercury-lsp\" }" },
    { { settings = { maxToken = 3 } }, "unknown setting 'maxToken'; the settings are: " .. table.concat(config.setting_keys, ", ") },
    { { keymaps = { accept = 1 } }, "keymap 'accept' must be a key string or false" },
    { { keymaps = { jump = "x" } },
      "unknown keymap 'jump'; the keymaps are: accept, accept_line, accept_word, dismiss, next, prev, trigger" },
    { { filetypes = "python" }, "option 'filetypes' must be a list of filetype names or nil" },
    { { next_edit = { apply = 1 } }, "next_edit.apply must be a key string or false" },
    { { next_edit = { debounce_ms = -5 } }, "next_edit.debounce_ms must be a number of milliseconds, 0 or more" },
    { { next_edit = { jump = "x" } }, "unknown next_edit option 'jump'; the options are: apply, debounce_ms, dismiss" },
  }
  for _, case in ipairs(cases) do
    local opts, problem = config.resolve(case[1])
    h.eq(nil, opts, "options for " .. vim.inspect(case[1]))
    h.eq(case[2], problem, "problem for " .. vim.inspect(case[1]))
  end
end)

h.test("setup() with bad options notifies once and starts nothing", function()
  notified = {}
  require("mercury").setup({ settings = { nope = true } })
  h.eq(1, #notified, "notifications")
  h.truthy(notified[1].message:find("^mercury: unknown setting 'nope'"), "message " .. notified[1].message)
  h.eq(vim.log.levels.ERROR, notified[1].level, "level")
  h.eq(nil, require("mercury").options, "options")
end)

h.test("the server's settings default to the generated server_defaults, and each one set replaces its default", function()
  local defaults = require("mercury.server_defaults")
  local keys = vim.tbl_keys(assert(config.resolve(nil)).settings)
  table.sort(keys)
  h.eq(config.setting_keys, keys, "default settings")
  h.eq(vim.tbl_count(defaults), #keys, "one setting per default")
  h.truthy(vim.tbl_contains(config.setting_keys, "maxTokens"), "maxTokens is a setting")
  local opts = assert(config.resolve({ settings = { triggerKinds = { "invoked" }, model = "/m" } }))
  h.eq({ "invoked" }, opts.settings.triggerKinds, "a list replaces, not merged index by index")
  h.eq("/m", opts.settings.model, "model")
  h.eq(defaults.maxTokens, opts.settings.maxTokens, "untouched default")
  -- JSON null travels as null.
  h.eq(vim.NIL, vim.json.decode(vim.json.encode(config.server_settings(opts.settings))).engineUrl, "null")
end)

h.test("empty settings travel as a JSON object, not an array", function()
  h.eq("{}", vim.json.encode(config.server_settings({})), "empty settings")
  h.eq('{"maxTokens":8}', vim.json.encode(config.server_settings({ maxTokens = 8 })), "settings")
end)

h.test("statusline follows mercury/status reports", function()
  status.reset()
  h.eq("", status.statusline(), "before any report")
  status.handler(nil, { state = "loading" })
  h.eq("Mercury: loading", status.statusline(), "loading")
  status.handler(nil, { state = "ready", latencyMs = 41.6, tokensPerSecond = 577.2, tokens = 24, steps = 6 })
  h.eq("Mercury · 42 ms · 577 tok/s", status.statusline(), "ready")
  status.handler(nil, { state = "ready", latencyMs = vim.NIL, tokensPerSecond = vim.NIL })
  h.eq("Mercury", status.statusline(), "ready, no completion yet")
  status.handler(nil, { state = "error", message = "No model." })
  h.eq("Mercury: error", status.statusline(), "error")
  status.handler(nil, { state = "disabled" })
  h.eq("Mercury: off", status.statusline(), "disabled")
end)

h.test("the statusline shows a slow answer's speed with a decimal and a cache hit as cached", function()
  status.handler(nil, { state = "ready", latencyMs = 19747.2, tokensPerSecond = 0.1, tokens = 2, source = "engine" })
  h.eq("Mercury · 19747 ms · 0.1 tok/s", status.statusline(), "slow, not 0 tok/s")
  status.handler(nil, { state = "ready", latencyMs = 900, tokensPerSecond = 0, tokens = 0, source = "engine" })
  h.eq("Mercury · 900 ms", status.statusline(), "nothing generated")
  status.handler(nil, { state = "ready", latencyMs = 0.3, tokensPerSecond = vim.NIL, tokens = 8, source = "cache" })
  h.eq("Mercury · cached", status.statusline(), "cache hit, not 0 ms")
  status.handler(nil, { state = "ready", latencyMs = 300, tokensPerSecond = 9.96, source = "engine" })
  h.eq("Mercury · 300 ms · 10 tok/s", status.statusline(), "rounded to 10")
end)

h.test("accepting checks that the suggestion still starts at the cursor", function()
  local accept = require("mercury.accept")
  -- Asked at column 13 of "    for v in val"; the server answered "ues:" there.
  local item = { insert_text = "ues:", range = { start_row = 0, start_col = 16, end_row = 0, end_col = 16 } }
  local line = "    for v in val"
  h.eq({ row = 0, start_col = 16, end_col = 16, lines = { "ues:" }, complete = true },
    accept.insertion(item, "all", line, 0, 16), "at the cursor it was asked for")
  -- "u" typed since: it is the start of the suggestion, which replaces it.
  h.eq({ row = 0, start_col = 16, end_col = 17, lines = { "ues:" }, complete = true },
    accept.insertion(item, "all", line .. "u", 0, 17), "typed through")
  -- "Q" typed since: the old suggestion must not go in at its old place.
  h.eq(nil, accept.insertion(item, "all", line .. "Q", 0, 17), "stale after another key")
  h.eq(nil, accept.insertion(item, "all", line, 1, 0), "another line")
  h.eq(nil, accept.insertion(item, "all", "    for v", 0, 9), "cursor before the start")
  h.eq(nil, accept.insertion(item, "all", line .. "ues:", 0, 20), "all of it typed: nothing left")
  -- Without a range the item inserts at the cursor.
  h.eq({ row = 2, start_col = 4, end_col = 4, lines = { "pass" }, complete = true },
    accept.insertion({ insert_text = "pass" }, "all", "    ", 2, 4), "no range")
end)

h.test("accept-word and accept-line take the next word or line of what is left", function()
  local accept = require("mercury.accept")
  h.eq("total", accept.next_word("total += value\n    return total"), "word")
  h.eq(" +=", accept.next_word(" += value"), "operator run with its blank")
  h.eq("    ", accept.next_word("    "), "blanks only")
  h.eq("total += value", accept.next_line("total += value\n    return total"), "line")
  h.eq("\n    return total", accept.next_line("\n    return total\nx"), "the next line after a break")
  local item = { insert_text = "urn total / n\n", range = { start_row = 3, start_col = 7, end_row = 3, end_col = 7 } }
  h.eq({ row = 3, start_col = 8, end_col = 8, lines = { "rn" }, complete = false },
    accept.insertion(item, "word", "    retu", 3, 8), "word after the typed 'u'")
  h.eq({ row = 3, start_col = 8, end_col = 8, lines = { "rn total / n" }, complete = false },
    accept.insertion(item, "line", "    retu", 3, 8), "rest of the line")
end)

h.test("the accept keys insert through vim.lsp.inline_completion, or are the key itself", function()
  -- Neovim 0.12's API as documented: get({ bufnr, on_accept }) returns whether an item is current and
  -- calls on_accept with it. A stand-in here, so this runs on any version; the real one is tested against
  -- the server in completion_test.lua on 0.12.
  local inline = require("mercury.inline")
  local saved = vim.lsp.inline_completion
  local current
  vim.lsp.inline_completion = { get = function(opts)
    if not current then
      return false
    end
    opts.on_accept(current)
    return true
  end }
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_set_current_buf(bufnr)
  -- A ")" after the cursor keeps column 17 valid outside insert mode.
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "    for v in valQ)" })
  vim.api.nvim_win_set_cursor(0, { 1, 17 })
  local fed = {}
  local feedkeys = vim.api.nvim_feedkeys
  vim.api.nvim_feedkeys = function(keys, mode) fed[#fed + 1] = { keys, mode } end
  local ok, err = pcall(function()
    local tab = inline.acceptor(bufnr, "<Tab>", "all")
    h.eq(vim.keycode("<Tab>"), tab(), "nothing drawn: a plain <Tab>")
    -- Draw a suggestion where Neovim would, in its namespace.
    local ns = vim.api.nvim_create_namespace("nvim.lsp.inline_completion")
    vim.api.nvim_buf_set_extmark(bufnr, ns, 0, 17, { virt_text = { { "es:", "ComplHint" } }, virt_text_pos = "inline" })
    current = { insert_text = "ues:", range = { start_row = 0, start_col = 16, end_row = 0, end_col = 16 } }
    h.eq("", tab(), "a suggestion is current: the key is taken")
    h.eq({ "    for v in valQ)" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "stale: nothing inserted")
    h.eq({ { vim.keycode("<Tab>"), "ni" } }, fed, "stale: the key itself instead, ahead of keys typed since")
    vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "    for v in valu)" })
    vim.api.nvim_win_set_cursor(0, { 1, 17 })
    h.eq("", tab(), "typed through")
    h.eq({ "    for v in values:)" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "accepted after the typed 'u'")
    h.eq({ 1, 20 }, vim.api.nvim_win_get_cursor(0), "cursor after it")
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
    vim.api.nvim_buf_set_extmark(bufnr, ns, 0, 20, { virt_text = { { "", "ComplHint" } }, virt_text_pos = "inline" })
    h.eq(vim.keycode("<Tab>"), tab(), "an empty suggestion: a plain <Tab>")
  end)
  vim.lsp.inline_completion = saved
  vim.api.nvim_feedkeys = feedkeys
  vim.api.nvim_buf_delete(bufnr, { force = true })
  assert(ok, err)
end)

h.test("ghost text gets a terminal color and italics where its group has none", function()
  local highlight = require("mercury.highlight")
  vim.api.nvim_set_hl(0, "ComplHint", { fg = "#808080" })
  vim.api.nvim_set_hl(0, "ComplHintMore", { fg = "#606060", ctermfg = 245 })
  highlight.ensure_ghost_text_visible()
  local hint = vim.api.nvim_get_hl(0, { name = "ComplHint" })
  h.eq(8, hint.ctermfg, "ComplHint terminal color")
  h.eq(true, hint.cterm and hint.cterm.italic, "ComplHint italic")
  h.eq(tonumber("808080", 16), hint.fg, "GUI color kept")
  h.eq(245, vim.api.nvim_get_hl(0, { name = "ComplHintMore" }).ctermfg, "a terminal color of its own is kept")
  vim.api.nvim_set_hl(0, "ComplHint", { fg = "#808080" })
  vim.cmd.doautocmd("ColorScheme")
  h.eq(8, vim.api.nvim_get_hl(0, { name = "ComplHint" }).ctermfg, "set again after a colorscheme")
end)

h.test("the engine is woken when completions come back on, and asked again when it is ready", function()
  local wake = require("mercury.wake")
  local bufnr = vim.api.nvim_get_current_buf()
  local requests = {}
  local client = { offset_encoding = "utf-16", attached_buffers = { [bufnr] = true },
    request = function(_, method, params) requests[#requests + 1] = { method, params.context } end }
  wake.after_status({ state = "ready" }, { state = "disabled" }, client)
  h.eq({}, requests, "switched off")
  wake.after_status({ state = "disabled" }, { state = "loading" }, client)
  h.eq({ { "textDocument/completion", { triggerKind = 1 } } }, requests, "switched on: one request")
  wake.after_status({ state = "loading" }, { state = "loading" }, client)
  h.eq(1, #requests, "no second request while it loads")
end)

h.test("the popup shows the first line of a multi-line infill", function()
  local completion = require("mercury.completion")
  local item = { label = "a + b", textEdit = { newText = "a + b\n    print(a)", range = {} } }
  h.eq({ word = "a + b", abbr = "a + b" }, completion.popup_item(item), "converted")
  h.eq({}, completion.popup_item({ label = "x", insertText = "$1", insertTextFormat = 2 }), "snippet untouched")
end)

h.test("an accepted multi-line infill replaces the one line the popup typed", function()
  local completion = require("mercury.completion")
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_set_current_buf(bufnr)
  -- The popup has typed the first line "x = 1" after the 8-column indent, before the ")" that followed
  -- the cursor; the cursor is after it.
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "    if ok:", "        x = 1)", "done()" })
  vim.api.nvim_win_set_cursor(0, { 2, 13 })
  local fake_client = { id = 7, offset_encoding = "utf-16" }
  local item = { textEdit = { newText = "x = 1\n        y = 2", range = {
    start = { line = 1, character = 8 }, ["end"] = { line = 1, character = 8 } } } }
  local completed = { word = "x = 1", user_data = { nvim = { lsp = { client_id = 7, completion_item = item } } } }
  completion.expand_accepted(fake_client, bufnr, completed, "cancel")
  h.eq({ "    if ok:", "        x = 1)", "done()" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "after cancel")
  completion.expand_accepted({ id = 8, offset_encoding = "utf-16" }, bufnr, completed, "accept")
  h.eq({ "    if ok:", "        x = 1)", "done()" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "other client's item")
  completion.expand_accepted(fake_client, bufnr, completed, "accept")
  h.eq({ "    if ok:", "        x = 1", "        y = 2)", "done()" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "after accept")
  h.eq({ 3, 13 }, vim.api.nvim_win_get_cursor(0), "cursor at the end of the insert")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

h.test("next-edit options default to normal-mode <Tab> and <Esc>, and merge key by key", function()
  local opts = assert(config.resolve({ next_edit = { dismiss = false } }))
  h.eq({ debounce_ms = 300, apply = "<Tab>", dismiss = false }, opts.next_edit, "next_edit")
  h.eq(false, opts.settings.nextEdit, "off by default: the server's switch")
end)

h.test("a next edit is drawn as a diff: old text struck, new text inline or as lines below", function()
  local view = require("mercury.next_edit_view")
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "def add(a, b):", "    item = a + b", "    return result" })
  local one_line = { start_row = 2, start_col = 11, end_row = 2, end_col = 17, text = "item" }
  view.draw(bufnr, one_line)
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, view.namespace, 0, -1, { details = true })
  h.eq(2, #marks, "a struck range and an inline text")
  h.eq({ 2, 11, 2, 17, "MercuryNextEditRemoved" }, { marks[1][2], marks[1][3], marks[1][4].end_row, marks[1][4].end_col,
    marks[1][4].hl_group }, "struck range")
  h.eq({ { "item", "MercuryNextEditAdded" } }, marks[2][4].virt_text, "inline new text")
  h.eq("inline", marks[2][4].virt_text_pos, "drawn inside the line")
  h.truthy(vim.api.nvim_get_hl(0, { name = "MercuryNextEditRemoved" }).strikethrough, "struck through")
  -- Two lines become three: the lines below show the result, prefix and rest of line included.
  local two_lines = { start_row = 1, start_col = 4, end_row = 2, end_col = 11, text = "total = a + b\n    print(total)\n    " }
  h.eq({ "    total = a + b", "    print(total)", "    result" }, view.lines_after(bufnr, two_lines), "lines after")
  view.draw(bufnr, two_lines)
  marks = vim.api.nvim_buf_get_extmarks(bufnr, view.namespace, 0, -1, { details = true })
  h.eq({ { { "    total = a + b", "MercuryNextEditAdded" } }, { { "    print(total)", "MercuryNextEditAdded" } },
    { { "    result", "MercuryNextEditAdded" } } }, marks[2][4].virt_lines, "virtual lines")
  view.clear(bufnr)
  h.eq({}, vim.api.nvim_buf_get_extmarks(bufnr, view.namespace, 0, -1, {}), "cleared")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

h.test("the next-edit hint names the line and the keys, where the proposal is elsewhere or out of view", function()
  local view = require("mercury.next_edit_view")
  local proposal = { start_row = 41, start_col = 0, end_row = 41, end_col = 3, text = "x" }
  h.eq("next edit on line 42: <Tab> applies, <Esc> dismisses", view.hint_text(proposal, { apply = "<Tab>",
    dismiss = "<Esc>" }), "both keys")
  h.eq("next edit on line 42", view.hint_text(proposal, { apply = false, dismiss = false }), "no keys")
  h.eq(false, view.needs_hint(proposal, 41, 0, 60), "on the cursor's line, in view")
  h.eq(true, view.needs_hint(proposal, 40, 0, 60), "on another line")
  h.eq(true, view.needs_hint(proposal, 41, 50, 90), "out of view")
end)

h.test("a next edit's range becomes byte columns in the client's encoding", function()
  local next_edit = require("mercury.next_edit")
  local bufnr = vim.api.nvim_create_buf(false, true)
  -- "é" is two bytes and one UTF-16 unit; "𝑥" four bytes and two UTF-16 units.
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "café = 𝑥 + 1" })
  local edit = { range = { start = { line = 0, character = 7 }, ["end"] = { line = 0, character = 9 } }, text = "y" }
  local proposal = next_edit.proposal(bufnr, edit, "utf-16")
  h.eq({ 0, 8, 0, 12 }, { proposal.start_row, proposal.start_col, proposal.end_row, proposal.end_col }, "utf-16")
  proposal = next_edit.proposal(bufnr, { range = { start = { line = 0, character = 0 },
    ["end"] = { line = 0, character = 99 } }, text = "" }, "utf-16")
  h.eq(#"café = 𝑥 + 1", proposal.end_col, "past the end of the line: its length")
  vim.api.nvim_buf_delete(bufnr, { force = true })
end)

h.test("checkhealth explains a missing setup() and a missing executable", function()
  vim.cmd("checkhealth mercury")
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  h.truthy(report:find("setup() was not called", 1, true), "report mentions setup:\n" .. report)
  vim.cmd("bwipeout!")
  require("mercury").setup({ cmd = { "/nonexistent/mercury-lsp" } })
  vim.cmd("checkhealth mercury")
  report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  h.truthy(report:find("/nonexistent/mercury-lsp is not executable", 1, true), "report names the server:\n" .. report)
  h.truthy(report:find("pip install .", 1, true), "report tells how to install:\n" .. report)
  h.truthy(report:find("Next edits: off", 1, true), "report says next edits are off:\n" .. report)
  vim.cmd("bwipeout!")
end)

h.test(":Mercury rejects an unknown subcommand in one sentence", function()
  notified = {}
  vim.cmd("Mercury frobnicate")
  h.truthy(notified[1] and notified[1].message:find("^mercury: unknown subcommand 'frobnicate'"), "message")
  h.eq({ "disable", "enable", "log", "restart", "status" }, vim.fn.getcompletion("Mercury ", "cmdline"), "completion")
end)

h.test(":Mercury status prints no vim.NIL for a JSON null message", function()
  require("mercury").setup({ cmd = { "/nonexistent/mercury-lsp" } })
  status.handler(nil, { state = "ready", latencyMs = vim.NIL, tokensPerSecond = vim.NIL, message = vim.NIL })
  local printed = vim.api.nvim_exec2("Mercury status", { output = true }).output
  h.eq("Mercury ", printed, ":Mercury status output")
  status.handler(nil, { state = "ready", message = "default on cpu" })
  h.eq("Mercury default on cpu", vim.api.nvim_exec2("Mercury status", { output = true }).output, "with a message")
end)

h.test("checkhealth reports an engine error that came without a message", function()
  status.handler(nil, { state = "error", message = vim.NIL })
  vim.cmd("checkhealth mercury")
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  h.truthy(report:find("Engine: error", 1, true), "engine line in:\n" .. report)
  h.truthy(not report:find("vim.NIL", 1, true), "no vim.NIL in:\n" .. report)
  vim.cmd("bwipeout!")
end)

h.run()
