--- The last `mercury/status` report from the server, and a statusline component that shows it.
local M = {}

---@type table|nil
M.last = nil

--- Handler for the `mercury/status` notification; returns the report it replaced.
---@return table|nil
function M.handler(_, result)
  local previous = M.last
  M.last = result
  vim.api.nvim_exec_autocmds("User", { pattern = "MercuryStatus", modeline = false, data = result })
  vim.cmd.redrawstatus({ bang = true })
  return previous
end

--- Forget the last report (the server stopped).
function M.reset()
  M.last = nil
end

--- A report's field, with JSON null (vim.NIL) read as nil.
---@param field string
---@return any
function M.field(field)
  local value = M.last and M.last[field]
  if value == vim.NIL then
    return nil
  end
  return value
end

--- "42 ms", or "cached" for a cache hit (no engine time: not "0 ms").
local function latency_text()
  if M.field("source") == "cache" then
    return "cached"
  end
  local ms = M.field("latencyMs")
  return type(ms) == "number" and ("%d ms"):format(math.floor(ms + 0.5)) or nil
end

--- "577 tok/s", one decimal below 10 so that a slow answer does not read "0 tok/s"; none for a cache hit.
local function speed_text()
  local speed = M.field("tokensPerSecond")
  if M.field("source") == "cache" or type(speed) ~= "number" or speed < 0.05 then
    return nil
  end
  local tenths = math.floor(speed * 10 + 0.5) / 10
  return tenths < 10 and ("%.1f tok/s"):format(tenths) or ("%d tok/s"):format(math.floor(speed + 0.5))
end

--- Text for a statusline: "Mercury · 42 ms · 577 tok/s", "Mercury: loading", "" before the server reports.
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
  for _, part in ipairs({ latency_text() or false, speed_text() or false }) do
    if part then
      parts[#parts + 1] = part
    end
  end
  return table.concat(parts, " · ")
end

return M
