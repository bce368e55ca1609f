--- Options of require("mercury").setup(): defaults, validation, and the settings sent to the server.
local M = {}

--- The server's settings and their defaults (camelCase, vim.NIL for null), generated from its settings model.
local server_defaults = require("mercury.server_defaults")

--- The keys of the server's `mercury` settings object, sorted.
M.setting_keys = vim.tbl_keys(server_defaults)
table.sort(M.setting_keys)

M.defaults = {
  -- How to start the language server.
  cmd = { "mercury-lsp" },
  -- Filetypes to attach to; nil attaches to every file buffer.
  filetypes = nil,
  -- Files that mark a project root; one server serves each root.
  root_markers = { ".git", "pyproject.toml", "package.json", "Cargo.toml", "go.mod" },
  -- Passed to the server as initializationOptions.mercury (camelCase keys); what you set replaces these.
  settings = vim.deepcopy(server_defaults),
  -- Neovim 0.12+: show completions as ghost text with vim.lsp.inline_completion.
  inline_completion = true,
  -- Neovim 0.11 without inline completion: use the built-in vim.lsp.completion popup.
  -- Set false when nvim-cmp or blink.cmp shows LSP completions for you.
  builtin_completion = true,
  -- Insert-mode keys; false disables one.
  keymaps = {
    accept = "<Tab>", -- inline: accept the suggestion; a normal <Tab> when none is shown or the menu is open
    accept_word = "<M-Right>", -- inline: accept its next word
    accept_line = "<M-C-Right>", -- inline: accept the rest of its line
    next = "<M-]>", -- inline: next candidate (settings.candidates > 1)
    prev = "<M-[>", -- inline: previous candidate
    dismiss = "<C-]>", -- inline: hide the suggestion
    trigger = "<C-Space>", -- 0.10/0.11: ask now and open the popup menu
  },
  -- Next-edit suggestions (Neovim 0.11+), asked for only while settings.nextEdit is true (off by default).
  next_edit = {
    debounce_ms = 300, -- wait after an edit (leaving insert mode, a normal-mode change) before asking
    -- Normal-mode keys, mapped only while a proposal is shown; false disables one.
    apply = "<Tab>", -- jump to the proposed edit and apply it
    dismiss = "<Esc>", -- hide it
  },
}

local KEYMAP_NAMES = vim.tbl_keys(M.defaults.keymaps)
table.sort(KEYMAP_NAMES)

local function is_string_list(value)
  if type(value) ~= "table" then
    return false
  end
  for _, item in ipairs(value) do
    if type(item) ~= "string" then
      return false
    end
  end
  return #value == vim.tbl_count(value)
end

--- One sentence when the `next_edit` options are wrong, else nil.
---@param next_edit any
---@return string|nil
local function next_edit_problem(next_edit)
  if next_edit == nil then
    return nil
  end
  if type(next_edit) ~= "table" then
    return "option 'next_edit' must be a table"
  end
  for name, value in pairs(next_edit) do
    if M.defaults.next_edit[name] == nil then
      return ("unknown next_edit option '%s'; the options are: apply, debounce_ms, dismiss"):format(tostring(name))
    end
    if name == "debounce_ms" and not (type(value) == "number" and value >= 0) then
      return "next_edit.debounce_ms must be a number of milliseconds, 0 or more"
    end
    if name ~= "debounce_ms" and value ~= false and type(value) ~= "string" then
      return ("next_edit.%s must be a key string or false"):format(name)
    end
  end
  return nil
end

local function problem_in(opts)
  if opts.cmd ~= nil and not (is_string_list(opts.cmd) and #opts.cmd > 0) then
    return "option 'cmd' must be a non-empty list of strings, like { \"mercury-lsp\" }"
  end
  if opts.filetypes ~= nil and not is_string_list(opts.filetypes) then
    return "option 'filetypes' must be a list of filetype names or nil"
  end
  if opts.root_markers ~= nil and not is_string_list(opts.root_markers) then
    return "option 'root_markers' must be a list of file names"
  end
  if opts.settings ~= nil and type(opts.settings) ~= "table" then
    return "option 'settings' must be a table of mercury settings"
  end
  for key in pairs(opts.settings or {}) do
    if not vim.tbl_contains(M.setting_keys, key) then
      return ("unknown setting '%s'; the settings are: %s"):format(tostring(key), table.concat(M.setting_keys, ", "))
    end
  end
  if opts.keymaps ~= nil and type(opts.keymaps) ~= "table" then
    return "option 'keymaps' must be a table"
  end
  for name, lhs in pairs(opts.keymaps or {}) do
    if M.defaults.keymaps[name] == nil then
      return ("unknown keymap '%s'; the keymaps are: %s"):format(tostring(name), table.concat(KEYMAP_NAMES, ", "))
    end
    if lhs ~= false and type(lhs) ~= "string" then
      return ("keymap '%s' must be a key string or false"):format(name)
    end
  end
  return next_edit_problem(opts.next_edit)
end

--- Merge user options over the defaults; returns nil and one sentence when they are wrong.
---@param opts table|nil
---@return table|nil, string|nil
function M.resolve(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    return nil, "setup() takes a table of options"
  end
  local problem = problem_in(opts)
  if problem then
    return nil, problem
  end
  local resolved = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Lists replace, they do not merge index by index; so does each setting (enabledLanguages, triggerKinds).
  resolved.cmd = opts.cmd or M.defaults.cmd
  resolved.root_markers = opts.root_markers or M.defaults.root_markers
  resolved.settings = vim.tbl_extend("force", vim.deepcopy(M.defaults.settings), opts.settings or {})
  return resolved, nil
end

--- The `mercury` object for the server; an empty table must travel as {} not [].
---@param settings table
---@return table
function M.server_settings(settings)
  if next(settings) == nil then
    return vim.empty_dict()
  end
  return vim.deepcopy(settings)
end

return M
