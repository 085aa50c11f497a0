--- Pure text helpers of the ghost text: which part of a server item to show at the cursor, and
--- how much of a suggestion "next word" and "next line" take. No editor state here.
local M = {}

--- Byte column of `character` (counted in the server's position `encoding`) in `line`.
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if vim.fn.has("nvim-0.11") == 1 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and col or #line
end

--- The texts to show at byte column `col` of `line` for an inlineCompletion `result` (a list or
--- an InlineCompletionList) requested at `position`. An item whose range starts before the cursor
--- repeats what is typed there (dropped from its start); one whose range ends after the cursor
--- replaces what follows (dropped from its end); items that do not fit are left out.
---@return string[]
function M.ghost_texts(result, line, col, position, encoding)
  local items = result and (result.items or result) or {}
  local out = {}
  for _, item in ipairs(items) do
    local text = item.insertText
    if type(text) == "table" then
      text = text.value -- a snippet: shown and inserted as written
    end
    local range = item.range
    if type(text) == "string" and range and range ~= vim.NIL then
      local same_line = range.start.line == position.line and range["end"].line == position.line
      if not same_line then
        text = nil
      else
        local start = M.byte_col(line, range.start.character, encoding)
        local stop = M.byte_col(line, range["end"].character, encoding)
        local before, after = line:sub(start + 1, col), line:sub(col + 1, stop)
        if start > col or stop < col or not vim.startswith(text, before) then
          text = nil
        else
          text = text:sub(#before + 1)
          if after ~= "" then
            text = vim.endswith(text, after) and text:sub(1, #text - #after) or nil
          end
        end
      end
    end
    if type(text) == "string" and text ~= "" then
      table.insert(out, text)
    end
  end
  return out
end

--- The start of `text` that "accept word" takes: leading blanks and one word (or one run of
--- punctuation); at a line break, the break and the next line's indentation.
function M.next_word(text)
  local ws = text:match("^%s*")
  if ws:find("\n") then
    return text:match("^[ \t]*\n[ \t]*")
  end
  local rest = text:sub(#ws + 1)
  return ws .. (rest:match("^[%w_]+") or rest:match("^[^%w_%s]+") or "")
end

--- The start of `text` that "accept line" takes: up to its first line break; if it starts with
--- one, the break and the following line.
function M.next_line(text)
  if text:sub(1, 1) == "\n" then
    return text:match("^\n[^\n]*")
  end
  return text:match("^[^\n]*")
end

return M
