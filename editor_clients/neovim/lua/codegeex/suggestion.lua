--- Ghost text: request `textDocument/inlineCompletion` as the user types (a timer debounce, the
--- previous request cancelled), draw the suggestion with extmarks (inline virtual text for its
--- first line, virtual lines for the rest), and accept it whole, by word or by line.
---
--- Each change fires `User CodeGeeXSuggestion` with data { event = "shown"|"cleared"|"accepted",
--- buf = bufnr, text = the suggestion (shown/accepted) or the part inserted (accepted) }.
local config = require("codegeex.config")
local server = require("codegeex.server")
local texts = require("codegeex.text")

local M = {}

M.ns = vim.api.nvim_create_namespace("codegeex")
M.METHOD = "textDocument/inlineCompletion"
local INVOKED, AUTOMATIC = 1, 2 -- InlineCompletionTriggerKind

local uv = vim.uv or vim.loop

---@class codegeex.Shown
---@field row integer   1-based cursor row the suggestion belongs to
---@field col integer   0-based byte column
---@field prefix string the line's text before `col` when it was shown
---@field text string   what is still to be inserted

---@class codegeex.BufState
---@field timer uv_timer_t|nil
---@field request {client: vim.lsp.Client, id: integer}|nil
---@field items string[]|nil
---@field index integer
---@field shown codegeex.Shown|nil
---@field accepted boolean  reported as accepted already
---@field tick integer      b:changedtick the state last saw

---@type table<integer, codegeex.BufState>
local buffers = {}

local function state(bufnr)
  local st = buffers[bufnr]
  if not st then
    st = { index = 1, accepted = false, tick = -1 }
    buffers[bufnr] = st
  end
  return st
end

local function emit(bufnr, event, text)
  vim.api.nvim_exec_autocmds("User", {
    pattern = "CodeGeeXSuggestion",
    modeline = false,
    data = { event = event, buf = bufnr, text = text },
  })
end

local function in_insert_mode()
  local mode = vim.api.nvim_get_mode().mode
  return mode:sub(1, 1) == "i" or mode:sub(1, 1) == "R"
end

local function render(bufnr, st)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local shown = st.shown
  if not shown then
    return
  end
  local hl = config.options.hl_group
  local lines = vim.split(shown.text, "\n", { plain = true })
  local opts = { hl_mode = "combine", priority = 200 }
  if lines[1] ~= "" then
    opts.virt_text = { { lines[1], hl } }
    opts.virt_text_pos = "inline"
  end
  if #lines > 1 then
    local tab = string.rep(" ", vim.bo[bufnr].tabstop)
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { (lines[i]:gsub("\t", tab)), hl } })
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, shown.row - 1, shown.col, opts)
end

local function stop_timer(st)
  if st.timer then
    st.timer:stop()
    st.timer:close()
    st.timer = nil
  end
end

local function cancel_request(st)
  if st.request then
    pcall(server.call, st.request.client, "cancel_request", st.request.id)
    st.request = nil
  end
end

--- Remove the ghost text (and forget the suggestion) without telling the server.
function M.clear(bufnr)
  local st = state(bufnr)
  local had = st.shown ~= nil
  st.shown, st.items = nil, nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
  if had then
    emit(bufnr, "cleared")
  end
end

--- Drop the suggestion: cancel pending work, clear it and report `codegeex/dismissed` once.
function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local st = state(bufnr)
  stop_timer(st)
  cancel_request(st)
  if st.shown and not st.accepted then
    server.notify(bufnr, server.DISMISSED)
  end
  M.clear(bufnr)
end

function M.visible(bufnr)
  local st = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return st ~= nil and st.shown ~= nil
end

--- The suggestion's remaining text, or nil.
function M.text(bufnr)
  local st = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return st and st.shown and st.shown.text or nil
end

local function show(bufnr, st, text)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local line = vim.api.nvim_get_current_line()
  st.shown = { row = cursor[1], col = cursor[2], prefix = line:sub(1, cursor[2]), text = text }
  st.accepted = false
  st.tick = vim.b[bufnr].changedtick
  render(bufnr, st)
  emit(bufnr, "shown", text)
end

--- Ask the server now (`invoked`: the user asked, so the server skips its own wait).
function M.request(bufnr, invoked)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local st = state(bufnr)
  stop_timer(st)
  cancel_request(st)
  if not config.options.enabled or bufnr ~= vim.api.nvim_get_current_buf() or not in_insert_mode() then
    return
  end
  local client = server.get_client(bufnr)
  if not client then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = invoked and INVOKED or AUTOMATIC }
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.b[bufnr].changedtick
  local ok, id
  ok, id = server.call(client, "request", M.METHOD, params, function(err, result)
    if st.request and st.request.id == id then
      st.request = nil
    end
    if err or not result then
      return
    end
    -- Stale: the buffer, the cursor or the mode moved on while the server worked.
    if
      not vim.api.nvim_buf_is_valid(bufnr)
      or bufnr ~= vim.api.nvim_get_current_buf()
      or vim.b[bufnr].changedtick ~= tick
      or not vim.deep_equal(vim.api.nvim_win_get_cursor(0), cursor)
      or not in_insert_mode()
      or not config.options.enabled
    then
      return
    end
    local line = vim.api.nvim_get_current_line()
    local items = texts.ghost_texts(result, line, cursor[2], params.position, client.offset_encoding)
    if #items == 0 then
      return
    end
    st.items, st.index = items, 1
    show(bufnr, st, items[1])
  end, bufnr)
  if ok and id then
    st.request = { client = client, id = id }
  end
end

--- Request after `debounce_ms` of quiet; a newer call restarts the wait and cancels the old request.
function M.schedule(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local st = state(bufnr)
  stop_timer(st)
  cancel_request(st)
  if not config.options.enabled or not config.options.auto_trigger then
    return
  end
  st.timer = uv.new_timer()
  st.timer:start(config.options.debounce_ms, 0, vim.schedule_wrap(function()
    stop_timer(st)
    M.request(bufnr, false)
  end))
end

--- TextChangedI: typing the suggestion's next characters keeps the rest; anything else drops it.
function M.on_text_changed(bufnr)
  local st = state(bufnr)
  local tick = vim.b[bufnr].changedtick
  if st.tick == tick then
    return -- our own edit, already accounted for
  end
  st.tick = tick
  local shown = st.shown
  if shown then
    local cursor = vim.api.nvim_win_get_cursor(0)
    local line = vim.api.nvim_get_current_line()
    if cursor[1] == shown.row and cursor[2] >= shown.col and line:sub(1, shown.col) == shown.prefix then
      local typed = line:sub(shown.col + 1, cursor[2])
      if typed ~= "" and vim.startswith(shown.text, typed) then
        if #typed == #shown.text then
          M.clear(bufnr) -- typed out in full: nothing left to accept or dismiss
          M.schedule(bufnr)
          return
        end
        shown.col, shown.prefix, shown.text = cursor[2], line:sub(1, cursor[2]), shown.text:sub(#typed + 1)
        st.items = { shown.text }
        render(bufnr, st)
        emit(bufnr, "shown", shown.text)
        return
      end
    end
    M.dismiss(bufnr)
  end
  M.schedule(bufnr)
end

--- CursorMovedI without an edit: the user moved away from the suggestion.
function M.on_cursor_moved(bufnr)
  local st = buffers[bufnr]
  if not st or not st.shown then
    return
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  if (cursor[1] ~= st.shown.row or cursor[2] ~= st.shown.col) and vim.b[bufnr].changedtick == st.tick then
    M.dismiss(bufnr)
  end
end

--- Insert `part` at the suggestion's position and put the cursor after it.
local function insert(bufnr, shown, part)
  local lines = vim.split(part, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, shown.row - 1, shown.col, shown.row - 1, shown.col, lines)
  local row = shown.row + #lines - 1
  local col = #lines == 1 and shown.col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row, col })
  return row, col
end

--- Accept the whole suggestion ("all"), its next word ("word") or its next line ("line").
---@param kind "all"|"word"|"line"|nil
---@return boolean whether anything was inserted
function M.accept(kind)
  local bufnr = vim.api.nvim_get_current_buf()
  local st = buffers[bufnr]
  if not st or not st.shown then
    return false
  end
  stop_timer(st)
  cancel_request(st)
  local shown = st.shown
  local part = shown.text
  if kind == "word" then
    part = texts.next_word(part)
  elseif kind == "line" then
    part = texts.next_line(part)
  end
  if part == "" then
    part = shown.text
  end
  if not st.accepted then
    st.accepted = true
    server.notify(bufnr, server.ACCEPTED)
  end
  local rest = shown.text:sub(#part + 1)
  local row, col = insert(bufnr, shown, part)
  emit(bufnr, "accepted", part)
  if rest == "" then
    M.clear(bufnr)
    return true
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row - 1, row, true)[1]
  st.shown = { row = row, col = col, prefix = line:sub(1, col), text = rest }
  st.items = { rest }
  st.tick = vim.b[bufnr].changedtick
  render(bufnr, st)
  emit(bufnr, "shown", rest)
  return true
end

--- Show the next (`delta` 1) or previous (-1) alternative; with one or none, ask the server again.
function M.cycle(delta)
  local bufnr = vim.api.nvim_get_current_buf()
  local st = state(bufnr)
  if not st.items or #st.items < 2 or not st.shown then
    M.request(bufnr, true)
    return
  end
  st.index = (st.index - 1 + delta) % #st.items + 1
  local accepted = st.accepted
  show(bufnr, st, st.items[st.index])
  st.accepted = accepted
end

--- Forget a buffer (BufWipeout).
function M.detach(bufnr)
  local st = buffers[bufnr]
  if st then
    stop_timer(st)
    cancel_request(st)
    buffers[bufnr] = nil
  end
end

return M
