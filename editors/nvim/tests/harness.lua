--- A small test runner for headless Neovim: tests run one after another in a coroutine,
--- so they can wait for the server and for typed keys while Neovim's main loop keeps running.
local M = {}

local tests = {}
local counts = { passed = 0, failed = 0, skipped = 0 }

--- The editors/nvim folder, found from this file's path.
M.plugin_dir = vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(debug.getinfo(1, "S").source:sub(2))))
M.repo_dir = vim.fs.dirname(vim.fs.dirname(M.plugin_dir))

function M.test(name, fn)
  tests[#tests + 1] = { name = name, fn = fn }
end

function M.skip(name, reason)
  tests[#tests + 1] = { name = name, skip = reason }
end

local function say(line)
  io.stdout:write(line .. "\n")
end

--- Wait, letting Neovim process input and events, until predicate() is true.
function M.wait_for(what, predicate, timeout_ms)
  local deadline = vim.uv.now() + (timeout_ms or 10000)
  local co = coroutine.running()
  while true do
    local ok, value = pcall(predicate)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      error(("timed out waiting for %s"):format(what), 2)
    end
    vim.defer_fn(function()
      coroutine.resume(co)
    end, 20)
    coroutine.yield()
  end
end

--- Type keys as a user would (mappings apply), processed by the main loop.
function M.feed(keys)
  vim.api.nvim_feedkeys(vim.keycode(keys), "m", false)
end

function M.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(("%s: expected %s, got %s"):format(what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function M.truthy(value, what)
  if not value then
    error(("%s: expected a true value, got %s"):format(what or "value", vim.inspect(value)), 2)
  end
  return value
end

local function finish()
  say(("%d passed, %d failed, %d skipped"):format(counts.passed, counts.failed, counts.skipped))
  vim.cmd(counts.failed == 0 and "qall!" or "cquit! 1")
end

--- Run the registered tests, print one line each and a summary, then quit (exit code 1 on failure).
---@param teardown fun()|nil
function M.run(teardown)
  coroutine.wrap(function()
    for _, t in ipairs(tests) do
      if t.skip then
        counts.skipped = counts.skipped + 1
        say(("SKIP %s: %s"):format(t.name, t.skip))
      else
        local ok, err = xpcall(t.fn, debug.traceback)
        if ok then
          counts.passed = counts.passed + 1
          say("PASS " .. t.name)
        else
          counts.failed = counts.failed + 1
          say(("FAIL %s: %s"):format(t.name, err))
        end
      end
    end
    if teardown then
      pcall(teardown)
    end
    finish()
  end)()
end

--- Press <Esc> and wait until Neovim is back in normal mode (the keys are fed asynchronously).
function M.leave_insert_mode()
  M.feed("<Esc>")
  M.wait_for("normal mode", function()
    return vim.api.nvim_get_mode().mode == "n"
  end)
end

--- Teardown for M.run: stop the named language clients and wait (up to 5 s) until they are gone.
function M.stop_clients(name)
  for _, c in ipairs(vim.lsp.get_clients({ name = name })) do
    c:stop()
  end
  vim.wait(5000, function()
    return #vim.lsp.get_clients({ name = name }) == 0
  end, 50)
end

return M
