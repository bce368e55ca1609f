--- The last `mercury/status` report from the server, and a statusline component that shows it.
local M = {}

---@type table|nil
M.last = nil

--- Handler for the `mercury/status` notification.
function M.handler(_, result)
  M.last = result
  vim.api.nvim_exec_autocmds("User", { pattern = "MercuryStatus", modeline = false, data = result })
  vim.cmd.redrawstatus({ bang = true })
end

--- Forget the last report (the server stopped).
function M.reset()
  M.last = nil
end

local function is_number(value)
  return type(value) == "number"
end

--- Text for a statusline: "Mercury 42 ms · 577 tok/s", "Mercury: loading", "" before the server reports.
---@return string
function M.statusline()
  local status = M.last
  if status == nil then
    return ""
  end
  if status.state == "loading" then
    return "Mercury: loading"
  elseif status.state == "error" then
    return "Mercury: error"
  elseif status.state == "disabled" then
    return "Mercury: off"
  end
  local parts = { "Mercury" }
  if is_number(status.latencyMs) then
    parts[#parts + 1] = ("%d ms"):format(math.floor(status.latencyMs + 0.5))
  end
  if is_number(status.tokensPerSecond) then
    parts[#parts + 1] = ("%d tok/s"):format(math.floor(status.tokensPerSecond + 0.5))
  end
  return table.concat(parts, " · ")
end

return M
