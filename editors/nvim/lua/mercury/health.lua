--- :checkhealth mercury
local M = {}

local function check_version()
  local v = vim.version()
  local version = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 0 then
    vim.health.error(("Neovim %s is too old; mercury needs 0.10 or newer"):format(version))
  elseif require("mercury.inline").available() then
    vim.health.ok(("Neovim %s: inline (ghost-text) completions with vim.lsp.inline_completion"):format(version))
  else
    vim.health.ok(("Neovim %s: completions through textDocument/completion (inline completions need 0.12)"):format(version))
  end
end

local function check_server(opts)
  local executable = opts.cmd[1]
  if vim.fn.executable(executable) == 1 then
    vim.health.ok(("Server: %s"):format(vim.fn.exepath(executable)))
  else
    vim.health.error(
      ("Server: %s is not executable"):format(executable),
      { "Install it: `pip install .` in the mercury-lsp repository", "Or point `cmd` in setup() at the mercury-lsp executable" }
    )
  end
end

local function redacted(settings)
  local shown = vim.deepcopy(settings)
  if type(shown.apiKey) == "string" then
    shown.apiKey = "<set>"
  end
  return vim.inspect(shown, {
    newline = " ",
    indent = "",
    process = function(value)
      return value == vim.NIL and "null" or value
    end,
  })
end

local function check_next_edit(opts)
  if opts.settings.nextEdit ~= true then
    vim.health.info("Next edits: off (settings = { nextEdit = true } turns them on)")
  elseif not require("mercury.next_edit").available() then
    vim.health.warn("Next edits: on in the settings, but showing them needs Neovim 0.11 or newer")
  else
    local keys = opts.next_edit
    vim.health.ok(("Next edits: on; asked %d ms after an edit; apply %s, dismiss %s (normal mode)"):format(
      keys.debounce_ms, keys.apply or "unmapped", keys.dismiss or "unmapped"))
  end
end

local function check_clients()
  local clients = require("mercury").clients()
  if #clients == 0 then
    vim.health.info("No mercury-lsp client is running (it starts when you open a file)")
    return
  end
  for _, client in ipairs(clients) do
    local buffers = vim.tbl_count(client.attached_buffers)
    vim.health.ok(("Client %d: root %s, %d buffer(s)"):format(client.id, client.root_dir or "(none)", buffers))
  end
end

local function check_engine()
  local status = require("mercury.status")
  local last = status.last
  if last == nil then
    vim.health.info("No mercury/status report yet")
  elseif last.state == "error" then
    -- A JSON null message arrives as vim.NIL; status.field reads it as nil.
    vim.health.error("Engine: " .. (status.field("message") or "error"))
  else
    vim.health.ok(("Engine: %s %s"):format(last.state, status.statusline()))
  end
end

function M.check()
  vim.health.start("mercury")
  check_version()
  local opts = require("mercury").options
  if opts == nil then
    vim.health.error("setup() was not called", { 'Add require("mercury").setup({}) to your init.lua' })
    return
  end
  check_server(opts)
  vim.health.info("Settings: " .. redacted(opts.settings))
  check_next_edit(opts)
  check_clients()
  check_engine()
end

return M
