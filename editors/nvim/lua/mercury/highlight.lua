--- Ghost text that stays apart from real text without truecolor.
---
--- Neovim draws inline suggestions with ComplHint (and ComplHintMore for the "(2/3)" hint). Where those
--- groups have a GUI color only, a terminal without 'termguicolors' draws the suggestion exactly like the
--- code around it; they get a terminal color and italics then.
local M = {}

local GROUPS = { "ComplHint", "ComplHintMore" }
-- Color 8 is the terminal's dark grey (bright black) in 16, 88 and 256 color palettes alike.
local FALLBACK = { ctermfg = 8, cterm = { italic = true } }

--- Give each ghost-text group without a terminal color the fallback one, keeping its GUI colors.
function M.ensure_ghost_text_visible()
  for _, name in ipairs(GROUPS) do
    local current = vim.api.nvim_get_hl(0, { name = name, link = false })
    if current.ctermfg == nil then
      current.default = nil
      vim.api.nvim_set_hl(0, name, vim.tbl_extend("force", current, FALLBACK))
    end
  end
end

-- A colorscheme resets the groups: look again after each one.
vim.api.nvim_create_autocmd("ColorScheme", {
  group = vim.api.nvim_create_augroup("mercury.highlight", { clear = true }),
  desc = "mercury: a terminal color for ghost text",
  callback = M.ensure_ghost_text_visible,
})

return M
