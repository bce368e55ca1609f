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
    { { keymaps = { jump = "x" } }, "unknown keymap 'jump'; the keymaps are: accept, next, prev, dismiss, trigger" },
    { { filetypes = "python" }, "option 'filetypes' must be a list of filetype names or nil" },
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
  vim.cmd("bwipeout!")
end)

h.test(":Mercury rejects an unknown subcommand in one sentence", function()
  notified = {}
  vim.cmd("Mercury frobnicate")
  h.truthy(notified[1] and notified[1].message:find("^mercury: unknown subcommand 'frobnicate'"), "message")
  h.eq({ "disable", "enable", "log", "restart", "status" }, vim.fn.getcompletion("Mercury ", "cmdline"), "completion")
end)

h.run()
