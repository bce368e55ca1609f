--- What accepting an inline completion item inserts at the cursor now: all of it, its next word or its next
--- line, or nothing when the item no longer applies.
---
--- Neovim keeps showing a suggestion while the user types on (until the next answer replaces it), so the
--- item may be older than the text: its range starts where the cursor was when it was asked for. It still
--- applies when what was typed since then is the start of its text; after any other key (`val` + `Q`) it
--- must not be inserted at its old place.
local M = {}

---@class mercury.Insertion
---@field row integer 0-based
---@field start_col integer byte column where the replaced text starts
---@field end_col integer byte column where it ends
---@field lines string[] the text that replaces it
---@field complete boolean the whole suggestion is inserted (its command, if any, runs then)

--- The suggestion's text after what was typed since it was asked for; nil when it no longer applies.
---@param item { insert_text: string|table, range?: vim.Range } (vim.Range: 0-based start_row, start_col, end_row, end_col)
---@param line string the cursor's line
---@param row integer 0-based cursor row
---@param col integer 0-based byte column of the cursor
---@return string|nil rest, integer start_col, integer end_col
function M.rest(item, line, row, col)
  if type(item.insert_text) ~= "string" then
    return nil, col, col -- a snippet: mercury-lsp sends none
  end
  local start_col, end_col = col, col
  local range = item.range
  if range then
    if range.start_row ~= row or range.end_row ~= row or range.start_col > col then
      return nil, col, col
    end
    -- mercury-lsp's ranges are empty at the cursor they were asked for; a range that also replaced text
    -- after it is kept as it was.
    start_col, end_col = range.start_col, math.max(range.end_col, col)
  end
  local typed = line:sub(start_col + 1, col)
  if not vim.startswith(item.insert_text, typed) then
    return nil, col, col
  end
  return item.insert_text:sub(#typed + 1), start_col, end_col
end

--- The next word of `text`: leading blanks, then a run of word characters or of other characters.
---@param text string
---@return string
function M.next_word(text)
  return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+") or ""
end

--- The rest of the current line of `text`, or, when it starts with a line break, that break and the next line.
---@param text string
---@return string
function M.next_line(text)
  local first = text:match("^[^\n]*")
  if first ~= "" then
    return first
  end
  return text:match("^\n[^\n]*") or ""
end

--- What to insert for `part` ("all", "word" or "line") of `item`; nil when nothing applies.
---@param item table vim.lsp.inline_completion.Item
---@param part "all"|"word"|"line"
---@param line string
---@param row integer
---@param col integer
---@return mercury.Insertion|nil
function M.insertion(item, part, line, row, col)
  local rest, start_col, end_col = M.rest(item, line, row, col)
  if rest == nil or rest == "" then
    return nil
  end
  if part == "all" then
    return { row = row, start_col = start_col, end_col = end_col, lines = vim.split(item.insert_text, "\n", { plain = true }),
      complete = true }
  end
  local piece = part == "word" and M.next_word(rest) or M.next_line(rest)
  if piece == "" then
    return nil
  end
  -- The typed text stays; only the next piece goes in at the cursor.
  return { row = row, start_col = col, end_col = col, lines = vim.split(piece, "\n", { plain = true }),
    complete = piece == rest }
end

--- Put `insertion` into the buffer and the cursor after it.
---@param bufnr integer
---@param win integer a window showing the buffer
---@param insertion mercury.Insertion
function M.apply(bufnr, win, insertion)
  local lines = insertion.lines
  vim.api.nvim_buf_set_text(bufnr, insertion.row, insertion.start_col, insertion.row, insertion.end_col, lines)
  local last_col = (#lines == 1 and insertion.start_col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(win, { insertion.row + #lines, last_col })
end

return M
