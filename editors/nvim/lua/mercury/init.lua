--- mercury-lsp for Neovim: starts the language server with the built-in LSP client.
local config = require("mercury.config")
local status = require("mercury.status")

local M = {}

local NAME = "mercury"

---@type table|nil the resolved options of the last setup()
M.options = nil

--- Statusline component: the engine's state, or the last completion's latency and speed.
M.statusline = status.statusline

local function notify_error(message)
  vim.notify("mercury: " .. message .. ".", vim.log.levels.ERROR)
end

local function on_attach(client, bufnr)
  local opts = M.options
  local inline = require("mercury.inline")
  if opts.inline_completion and inline.available() then
    inline.attach(bufnr, opts.keymaps)
  elseif opts.builtin_completion and vim.lsp.completion ~= nil then
    require("mercury.completion").attach(client, bufnr, opts.keymaps)
  end
  require("mercury.next_edit").attach(bufnr)
end

--- The client configuration shared by vim.lsp.config (0.11+) and vim.lsp.start (0.10).
local function client_config(opts)
  local settings = config.server_settings(opts.settings)
  return {
    name = NAME,
    cmd = opts.cmd,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    init_options = { mercury = settings },
    -- Also answers workspace/configuration and is pushed once with didChangeConfiguration.
    settings = { mercury = settings },
    handlers = {
      ["mercury/status"] = function(err, result, ctx)
        local previous = status.handler(err, result, ctx)
        require("mercury.wake").after_status(previous, result, vim.lsp.get_client_by_id(ctx.client_id))
      end,
    },
    on_attach = on_attach,
    on_exit = function()
      vim.schedule(status.reset)
    end,
  }
end

local function start_in_buffer(bufnr)
  local opts = M.options
  if vim.bo[bufnr].buftype ~= "" or vim.api.nvim_buf_get_name(bufnr) == "" then
    return
  end
  if opts.filetypes and not vim.tbl_contains(opts.filetypes, vim.bo[bufnr].filetype) then
    return
  end
  local cfg = client_config(opts)
  cfg.root_dir = vim.fs.root(bufnr, opts.root_markers) or vim.fn.getcwd()
  vim.lsp.start(cfg, { bufnr = bufnr })
end

--- Start the server for every open file buffer, and for files opened later.
local function start()
  if vim.lsp.config ~= nil then
    vim.lsp.config(NAME, client_config(M.options))
    vim.lsp.enable(NAME)
    return
  end
  vim.api.nvim_create_autocmd("FileType", {
    group = vim.api.nvim_create_augroup("mercury.start", { clear = true }),
    callback = function(args)
      start_in_buffer(args.buf)
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      start_in_buffer(bufnr)
    end
  end
end

--- The running mercury clients.
---@return vim.lsp.Client[]
function M.clients()
  return vim.lsp.get_clients({ name = NAME })
end

--- Change settings and push them to the running servers with didChangeConfiguration.
---@param changes table camelCase settings, e.g. { enabled = false }
function M.update_settings(changes)
  if M.options == nil then
    return notify_error("call require(\"mercury\").setup() first")
  end
  local merged = vim.tbl_extend("force", M.options.settings, changes)
  local resolved, problem = config.resolve(vim.tbl_extend("force", M.options, { settings = merged }))
  if problem then
    return notify_error(problem)
  end
  M.options.settings = resolved.settings
  local settings = { mercury = config.server_settings(merged) }
  for _, client in ipairs(M.clients()) do
    client.settings = settings
    client:notify("workspace/didChangeConfiguration", { settings = settings })
  end
  if vim.lsp.config ~= nil then
    vim.lsp.config(NAME, client_config(M.options))
  end
end

--- Stop the servers and start them again for the open buffers.
function M.restart()
  for _, client in ipairs(M.clients()) do
    client:stop()
  end
  vim.wait(5000, function()
    return #M.clients() == 0
  end, 50)
  status.reset()
  start()
end

local subcommands = {
  enable = function()
    M.update_settings({ enabled = true })
  end,
  disable = function()
    M.update_settings({ enabled = false })
  end,
  restart = M.restart,
  status = function()
    local line = status.statusline()
    local message = status.field("message")
    print(line ~= "" and line or "Mercury: no report from the server yet", message or "")
  end,
  log = function()
    vim.cmd.edit(vim.fn.fnameescape(vim.lsp.log.get_filename()))
  end,
}

local function create_command()
  vim.api.nvim_create_user_command("Mercury", function(args)
    local run = subcommands[args.fargs[1]]
    if run == nil then
      return notify_error(("unknown subcommand '%s'; use one of: %s"):format(
        args.fargs[1] or "", table.concat(vim.tbl_keys(subcommands), ", ")))
    end
    run()
  end, {
    nargs = 1,
    desc = "mercury-lsp: enable, disable, restart, status, log",
    complete = function()
      local names = vim.tbl_keys(subcommands)
      table.sort(names)
      return names
    end,
  })
end

--- Configure and start mercury-lsp. See editors/README.md for the options.
---@param opts table|nil
function M.setup(opts)
  if vim.fn.has("nvim-0.10") == 0 then
    return notify_error("needs Neovim 0.10 or newer")
  end
  local resolved, problem = config.resolve(opts)
  if problem then
    return notify_error(problem)
  end
  M.options = resolved
  create_command()
  start()
end

return M
