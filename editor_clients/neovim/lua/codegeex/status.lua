--- The server's and the model's state, for the statusline, `:CodeGeeX status` and :checkhealth.
---
--- Fed by the client's lifecycle, `$/progress` (LspProgress) and `codegeex/status` replies.
--- Every change fires `User CodeGeeXStatus`.
local M = {}

---@class codegeex.State
---@field phase "off"|"starting"|"loading"|"ready"|"error"|"stopped"
---@field message string|nil   progress message, or the error
---@field percentage number|nil
---@field model string|nil
---@field format string|nil
---@field cmd string|nil       how the server was started
---@field server table|nil     the last `codegeex/status` reply
M.state = { phase = "off" }

local function changed()
  vim.api.nvim_exec_autocmds("User", { pattern = "CodeGeeXStatus", modeline = false, data = M.state })
end

local function set(fields)
  M.state = vim.tbl_extend("force", M.state, fields)
  changed()
end

function M.set_starting(cmd)
  set({ phase = "starting", cmd = cmd, message = nil, percentage = nil })
end

function M.set_error(message)
  set({ phase = "error", message = message })
end

--- Ask the server for `codegeex/status` and fold the reply in; `done(reply|nil)` after.
function M.refresh(done)
  local server = require("codegeex.server")
  local client = server.get_client()
  if not client then
    if done then
      done(nil)
    end
    return
  end
  server.call(client, "request", server.STATUS, vim.NIL, function(err, result)
    if err or type(result) ~= "table" then
      if done then
        done(nil)
      end
      return
    end
    local phase = ({ ready = "ready", error = "error", loading = "loading" })[result.state] or M.state.phase
    set({
      phase = phase,
      model = result.model ~= vim.NIL and result.model or nil,
      format = result.format ~= vim.NIL and result.format or nil,
      message = phase == "error" and result.error or M.state.message,
      server = result,
    })
    if done then
      done(result)
    end
  end)
end

local poll_timer = nil

--- Poll `codegeex/status` while the model loads (progress says when it ends, polling is the backstop).
local function poll()
  if poll_timer then
    return
  end
  poll_timer = (vim.uv or vim.loop).new_timer()
  poll_timer:start(500, 1000, vim.schedule_wrap(function()
    if M.state.phase ~= "starting" and M.state.phase ~= "loading" then
      if poll_timer then
        poll_timer:stop()
        poll_timer:close()
        poll_timer = nil
      end
      return
    end
    M.refresh()
  end))
end

function M.on_init(_client)
  set({ phase = "loading", message = nil })
  poll()
end

function M.on_exit(code, signal)
  set({ phase = "stopped", message = ("server exited (code %s, signal %s)"):format(code, signal) })
end

--- LspProgress handler: model-load progress of our client.
function M.on_progress(args)
  local server = require("codegeex.server")
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  if not client or client.name ~= server.NAME then
    return
  end
  local value = args.data.params and args.data.params.value or {}
  if value.kind == "end" then
    set({ message = value.message, percentage = nil })
    M.refresh()
  else
    set({
      phase = M.state.phase == "error" and "error" or "loading",
      message = value.message or value.title,
      percentage = value.percentage,
    })
    poll()
  end
end

--- A short text for a statusline, e.g. `CodeGeeX ✓`, `CodeGeeX 40%`.
function M.statusline()
  local s = M.state
  if not require("codegeex.config").options.enabled then
    return "CodeGeeX off"
  end
  if s.phase == "ready" then
    return "CodeGeeX ✓"
  elseif s.phase == "loading" or s.phase == "starting" then
    return "CodeGeeX " .. (s.percentage and (math.floor(s.percentage) .. "%") or "…")
  elseif s.phase == "error" then
    return "CodeGeeX ✗"
  elseif s.phase == "stopped" then
    return "CodeGeeX stopped"
  end
  return "CodeGeeX"
end

--- Human-readable lines for `:CodeGeeX status`.
function M.describe()
  local s = M.state
  local lines = { ("CodeGeeX: %s%s"):format(s.phase, s.message and (" — " .. s.message) or "") }
  if s.model then
    table.insert(lines, ("model: %s (format %s)"):format(s.model, s.format or "?"))
  end
  if s.cmd then
    table.insert(lines, "server: " .. s.cmd)
  end
  local counters = s.server and s.server.counters
  if type(counters) == "table" then
    local parts = {}
    for _, key in ipairs({ "requests", "served", "empty", "cancelled", "decodes", "accepted", "dismissed" }) do
      if counters[key] then
        table.insert(parts, ("%s %s"):format(key, counters[key]))
      end
    end
    table.insert(lines, table.concat(parts, ", "))
  end
  return lines
end

return M
