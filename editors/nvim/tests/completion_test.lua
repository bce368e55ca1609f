--- Against the real mercury-lsp: the README's setup lines, a Python file, a completion typed for
--- and accepted as a user would, and the inserted text checked against what the server sent.
--- Run by tests/editors/test_neovim.py, which sets MERCURY_TEST_MODEL and MERCURY_RUNTIME_DIR.
local h = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "harness.lua"))

local model = assert(vim.env.MERCURY_TEST_MODEL, "MERCURY_TEST_MODEL must name a model folder")
local SOURCE = { "def add(a, b):", '    """Return the sum of a and b."""', "    return ", "", "print(add(1, 2))" }
local CURSOR = { line = 2, character = 11 } -- after "    return "

--- The Lua block that follows <!-- nvim-setup --> in editors/README.md, with its two placeholders filled.
local function readme_setup()
  local readme = table.concat(vim.fn.readfile(vim.fs.joinpath(h.plugin_dir, "..", "README.md")), "\n")
  local block = assert(readme:match("<!%-%- nvim%-setup %-%->%s*```lua\n(.-)\n```"), "README has no nvim-setup block")
  local filled, clones = block:gsub("/path/to/mercury%-lsp", h.repo_dir)
  local with_model, models = filled:gsub("/path/to/model", model)
  assert(clones == 1 and models == 1, "the README setup block must name /path/to/mercury-lsp and /path/to/model once")
  return with_model
end

local function mercury_client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = "mercury" })[1]
end

--- Ask the server directly until the engine has loaded and answers with something. While it loads the
--- server answers at once; a first engine answer can take many seconds on a busy machine, and a request
--- given up (and so cancelled) too early would never get one.
local function first_answer(client, bufnr, method, params)
  local answer
  h.wait_for(method .. " with a result (model loading)", function()
    local response = client:request_sync(method, params, 60000, bufnr)
    local result = response and response.result
    local items = result and (result.items or result) or {}
    if #items > 0 then
      answer = items[1]
      return true
    end
    return false
  end, 180000)
  return answer
end

--- The buffer text once `edit` (an LSP TextEdit) is applied to SOURCE.
local function expected_after(edit, encoding)
  local scratch = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(scratch, 0, -1, false, SOURCE)
  vim.lsp.util.apply_text_edits({ edit }, scratch, encoding)
  local lines = vim.api.nvim_buf_get_lines(scratch, 0, -1, false)
  vim.api.nvim_buf_delete(scratch, { force = true })
  return lines
end

local function reset_buffer(bufnr)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, SOURCE)
  vim.api.nvim_win_set_cursor(0, { CURSOR.line + 1, 0 })
end

vim.o.showmode = false
local file = vim.fs.joinpath(vim.fn.tempname(), "add.py")
vim.fn.mkdir(vim.fs.dirname(file), "p")
vim.fn.writefile(SOURCE, file)
local bufnr, client

h.test("the README setup lines start mercury-lsp for a Python file", function()
  assert(load(readme_setup(), "README nvim-setup"))()
  vim.cmd.edit(file)
  bufnr = vim.api.nvim_get_current_buf()
  client = h.wait_for("the mercury client to attach", function()
    local c = mercury_client(bufnr)
    return c and c.initialized and c
  end, 30000)
  h.eq(model, client.config.init_options.mercury.model, "model sent in initializationOptions")
  -- These tests are about the editor and the wire, not about what the model is sure of: the bundled model's answer
  -- at CURSOR sits at the default minConfidence cut (the server's own tests cover the cut), so show every answer.
  require("mercury").update_settings({ minConfidence = 0 })
end)

--- The suggestion drawn now, as Neovim draws it (its namespace's extmarks), '' when none.
local function ghost_text(bufnr)
  local ns = vim.api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
  local parts = {}
  for _, mark in ipairs(ns and vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true }) or {}) do
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      parts[#parts + 1] = chunk[1]
    end
  end
  return table.concat(parts)
end

-- The plugin is on the runtimepath only once the README lines ran, so ask Neovim directly.
if vim.lsp.inline_completion ~= nil then
  h.skip("textDocument/completion in the popup menu", "Neovim 0.12 shows inline completions instead")
  h.test("inline completion: a key typed while the engine loads gets its suggestion once it is ready", function()
    -- The server starts its engine now; the answer to this key is empty, and nothing else is typed.
    reset_buffer(bufnr)
    h.feed("A")
    h.wait_for("ghost text without another key", function()
      return ghost_text(bufnr) ~= ""
    end, 180000)
    h.leave_insert_mode()
  end)
  h.test("inline completion: ghost text appears and <Tab> accepts it", function()
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    params.position = CURSOR
    params.context = { triggerKind = 1 }
    local item = first_answer(client, bufnr, "textDocument/inlineCompletion", params)
    local range = item.range or { start = CURSOR, ["end"] = CURSOR }
    local expected = expected_after({ range = range, newText = item.insertText }, client.offset_encoding)
    reset_buffer(bufnr)
    h.feed("A")
    local ns = vim.api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
    h.wait_for("ghost text", function()
      return ns and #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, {}) > 0
    end, 60000)
    h.feed("<Tab>")
    h.wait_for("the accepted suggestion", function()
      return vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), expected)
    end, 10000)
    h.leave_insert_mode()
  end)
  h.test("inline completion: a suggestion typed past is not inserted at its old place", function()
    reset_buffer(bufnr)
    vim.bo[bufnr].expandtab = false
    vim.bo[bufnr].softtabstop = 0
    h.feed("A")
    local shown = h.wait_for("ghost text", function()
      local text = ghost_text(bufnr)
      return text ~= "" and text
    end, 60000)
    h.truthy(not vim.startswith(shown, "Q"), "the suggestion must not start with the key typed past it: " .. shown)
    -- "Q" and <Tab> together, before Neovim asks again (it waits 200 ms): the drawn suggestion is stale.
    h.feed("Q<Tab>")
    h.wait_for("the typed keys", function()
      return vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1] ~= "    return "
    end, 10000)
    vim.wait(300)
    h.eq("    return Q\t", vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1], "line after Q<Tab>")
    h.leave_insert_mode()
  end)
  h.test("inline completion: <M-Right> accepts the next word of the suggestion", function()
    reset_buffer(bufnr)
    h.feed("A")
    local shown = h.wait_for("ghost text", function()
      local text = ghost_text(bufnr)
      return text ~= "" and text
    end, 60000)
    local word = require("mercury.accept").next_word(shown)
    h.feed("<M-Right>")
    h.wait_for("the next word in the buffer", function()
      return vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1] == "    return " .. word
    end, 10000)
    h.leave_insert_mode()
  end)
  h.test("inline completion: with candidates = 2, <M-]> cycles to the next one", function()
    require("mercury").update_settings({ candidates = 2 })
    reset_buffer(bufnr)
    h.feed("A")
    h.wait_for("ghost text", function()
      return ghost_text(bufnr) ~= ""
    end, 60000)
    h.feed("<M-]>")
    -- Neovim marks a selected candidate with "(index/count)" after the ghost text.
    local hint = h.wait_for("the candidate hint", function()
      return ghost_text(bufnr):match("%((%d+)/(%d+)%)$")
    end, 10000)
    h.truthy(hint, "hint")
    h.leave_insert_mode()
    require("mercury").update_settings({ candidates = 1 })
  end)
  h.test("inline completion: <Tab> is a plain Tab when nothing is shown", function()
    reset_buffer(bufnr)
    -- A plain <Tab> then inserts one tab character (the python ftplugin sets expandtab and softtabstop).
    vim.bo[bufnr].expandtab = false
    vim.bo[bufnr].softtabstop = 0
    h.feed("A")
    h.wait_for("insert mode", function()
      return vim.api.nvim_get_mode().mode == "i"
    end)
    h.feed("<C-]><Tab>")
    h.wait_for("the line to change", function()
      return vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1] ~= "    return "
    end)
    h.eq("    return \t", vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1], "line after <Tab>")
    h.leave_insert_mode()
  end)
else
  h.test("textDocument/completion: <C-Space> shows the infill and <C-y> inserts all of it", function()
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    params.position = CURSOR
    params.context = { triggerKind = 1 }
    local item = first_answer(client, bufnr, "textDocument/completion", params)
    local edit = item.textEdit and { range = item.textEdit.range or item.textEdit.insert, newText = item.textEdit.newText }
      or { range = { start = CURSOR, ["end"] = CURSOR }, newText = item.insertText or item.label }
    h.truthy(vim.trim(edit.newText) ~= "", "the server's completion text is not blank")
    local expected = expected_after(edit, client.offset_encoding)
    reset_buffer(bufnr)
    h.feed("A")
    h.wait_for("insert mode", function()
      return vim.api.nvim_get_mode().mode == "i"
    end)
    h.feed("<C-Space>")
    h.wait_for("the completion menu", function()
      return vim.fn.pumvisible() == 1
    end, 60000)
    -- The plugin sets completeopt to menuone,noinsert: the infill is shown, selected, and not yet typed.
    h.eq(0, vim.fn.complete_info({ "selected" }).selected, "selected item")
    h.eq("    return ", vim.api.nvim_get_current_line(), "line while the menu is open")
    h.feed("<C-y>")
    h.wait_for("the accepted completion", function()
      return vim.fn.pumvisible() == 0 and vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), expected)
    end, 10000)
    h.leave_insert_mode()
    h.eq(expected, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "buffer after accepting")
  end)
  h.skip("inline completion (ghost text)", ("needs Neovim 0.12; this is %d.%d.%d"):format(vim.version().major, vim.version().minor, vim.version().patch))
end

h.test("the statusline shows the last completion's latency", function()
  h.wait_for("a ready status", function()
    local line = require("mercury").statusline()
    -- A cache hit (type-through) shows "cached" instead of a latency.
    return line:match("^Mercury · %d+ ms") or line == "Mercury · cached"
  end, 10000)
end)

h.test(":checkhealth mercury reports the server, the client and the engine", function()
  vim.cmd("checkhealth mercury")
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  h.truthy(report:find("Server: " .. vim.fn.exepath("mercury-lsp"), 1, true), "server path in:\n" .. report)
  h.truthy(report:find("Client %d+: root"), "client in:\n" .. report)
  h.truthy(report:find("Engine: ready", 1, true), "engine state in:\n" .. report)
  vim.cmd("bwipeout!")
end)

h.test(":Mercury disable reaches the server, which then stops completing", function()
  vim.cmd("Mercury disable")
  h.wait_for("the statusline to show off", function()
    return require("mercury").statusline() == "Mercury: off"
  end, 10000)
  h.eq(false, client.settings.mercury.enabled, "client settings")
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.position = { line = 4, character = 0 }
  params.context = { triggerKind = 1 }
  local response = client:request_sync("textDocument/completion", params, 10000, bufnr)
  local result = response and response.result
  h.eq(0, result and #(result.items or result) or 0, "items while disabled")
  vim.cmd("Mercury enable")
  h.eq(true, client.settings.mercury.enabled, "client settings")
  -- No key is pressed: the plugin wakes the engine connection, and the statusline leaves "loading".
  h.wait_for("the statusline to show the engine ready again without a keystroke", function()
    local line = require("mercury").statusline()
    return line ~= "" and not vim.tbl_contains({ "Mercury: off", "Mercury: loading", "Mercury: error" }, line)
  end, 60000)
end)

h.run(function()
  h.stop_clients("mercury")
end)
