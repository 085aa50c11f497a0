--- The language server: finding `codegeex-lsp`, starting it with vim.lsp.start, and talking to it.
---
--- One client (name "codegeex") serves every buffer: the model is loaded once per Neovim.
local config = require("codegeex.config")
local status = require("codegeex.status")

local M = {}

M.NAME = "codegeex"
M.ACCEPTED = "codegeex/accepted"
M.DISMISSED = "codegeex/dismissed"
M.STATUS = "codegeex/status"

local has_011 = vim.fn.has("nvim-0.11") == 1
local uv = vim.uv or vim.loop

--- Call a client method the way this Neovim wants it (0.11: client:method(), 0.10: client.method()).
function M.call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

local function executable(path)
  return path ~= nil and path ~= "" and vim.fn.executable(path) == 1
end

--- The server command (a list) and where it was found, or nil and why not.
---@return string[]|nil, string
function M.resolve_cmd(root)
  local o = config.options.server
  local args = vim.list_extend({ "serve" }, vim.deepcopy(o.args or {}))
  if type(o.cmd) == "table" then
    return vim.list_extend(vim.deepcopy(o.cmd), args), "server.cmd"
  end
  if type(o.cmd) == "string" then
    local cmd = vim.fn.expand(o.cmd)
    if not executable(cmd) then
      return nil, ("server.cmd %s is not executable"):format(cmd)
    end
    return vim.list_extend({ cmd }, args), "server.cmd"
  end
  local bin = vim.fn.has("win32") == 1 and "Scripts/codegeex-lsp.exe" or "bin/codegeex-lsp"
  local candidates = {}
  for _, dir in ipairs({ root, uv.cwd() }) do
    if dir then
      for _, venv in ipairs({ ".venv", "venv", "env" }) do
        table.insert(candidates, { vim.fs.joinpath(dir, venv, bin), "project venv" })
      end
    end
  end
  if vim.env.VIRTUAL_ENV then
    table.insert(candidates, { vim.fs.joinpath(vim.env.VIRTUAL_ENV, bin), "$VIRTUAL_ENV" })
  end
  table.insert(candidates, { vim.fn.exepath("codegeex-lsp"), "PATH" })
  for _, c in ipairs(candidates) do
    if executable(c[1]) then
      return vim.list_extend({ c[1] }, args), c[2]
    end
  end
  return nil, "codegeex-lsp not found in the project's .venv, $VIRTUAL_ENV or PATH (set server.cmd)"
end

function M.root_dir(bufnr)
  local markers = config.options.server.root_markers
  local name = vim.api.nvim_buf_get_name(bufnr)
  local start = name ~= "" and vim.fs.dirname(name) or uv.cwd()
  local found = vim.fs.find(markers, { path = start, upward = true })[1]
  return found and vim.fs.dirname(found) or uv.cwd()
end

--- Recent `window/logMessage` lines, for `:CodeGeeX log`.
M.log_lines = {}
local MAX_LOG_LINES = 2000

local function on_log_message(_, params, _)
  local kinds = { "ERROR", "WARN", "INFO", "LOG" }
  for line in vim.gsplit(params.message or "", "\n", { plain = true }) do
    table.insert(M.log_lines, ("%s %s"):format(kinds[params.type] or "LOG", line))
  end
  while #M.log_lines > MAX_LOG_LINES do
    table.remove(M.log_lines, 1)
  end
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  caps.window = caps.window or {}
  caps.window.workDoneProgress = true
  return caps
end

function M.get_client(bufnr)
  local filter = { name = M.NAME }
  if bufnr then
    filter.bufnr = bufnr
  end
  return vim.lsp.get_clients(filter)[1]
end

--- Attach the buffer to the (shared) codegeex client, starting it on first use.
function M.attach(bufnr)
  local root = M.root_dir(bufnr)
  local cmd, source = M.resolve_cmd(root)
  if not cmd then
    status.set_error(source)
    if not M._reported_missing then
      M._reported_missing = true
      vim.notify("codegeex: " .. source, vim.log.levels.ERROR)
    end
    return nil
  end
  local starting = M.get_client() == nil
  local id = vim.lsp.start({
    name = M.NAME,
    cmd = cmd,
    root_dir = root,
    capabilities = capabilities(),
    init_options = config.server_options(),
    handlers = { ["window/logMessage"] = on_log_message },
    on_init = function(client)
      status.on_init(client)
    end,
    on_exit = function(code, signal)
      vim.schedule(function()
        status.on_exit(code, signal)
      end)
    end,
  }, {
    bufnr = bufnr,
    reuse_client = function(client, conf)
      return client.name == conf.name
    end,
  })
  if starting and id then
    status.set_starting(table.concat(cmd, " ") .. " (" .. source .. ")")
  end
  return id
end

--- Tell the server what became of a suggestion in `bufnr`.
function M.notify(bufnr, method)
  local client = M.get_client(bufnr)
  if client then
    M.call(client, "notify", method, { uri = vim.uri_from_bufnr(bufnr) })
  end
end

--- Send changed options (after setup() was called again) without a restart.
function M.push_options()
  local client = M.get_client()
  if client then
    M.call(client, "notify", "workspace/didChangeConfiguration", { settings = config.server_options() })
  end
end

--- Stop the client; buffers re-attach through `attach` (FileType/BufEnter).
function M.stop()
  local client = M.get_client()
  if client then
    M.call(client, "stop", true)
  end
end

return M
